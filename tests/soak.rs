//! Soak: subscribers over several channels, a steady publish rate, clients dropping and
//! resuming with Last-Event-ID at random. Every client must receive every event of its
//! channels exactly once and in order across its reconnects, and once the clients leave and the
//! histories expire, channels and memory are released.
//!
//! Small in the normal suite; `scripts/soak.sh` runs it large. Sizes come from the environment:
//! SOAK_SUBSCRIBERS, SOAK_CHANNELS, SOAK_RATE (events per second, all channels), SOAK_SECONDS,
//! SOAK_DROP_PERCENT (chance, per event, that a client drops and resumes).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Gateway;
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_drop_and_resume_get_every_event_exactly_once_and_memory_is_released() {
    let subscribers = env("SOAK_SUBSCRIBERS", 100) as usize;
    let channels = env("SOAK_CHANNELS", 4) as usize;
    let rate = env("SOAK_RATE", 200);
    let seconds = env("SOAK_SECONDS", 4);
    let drop_percent = env("SOAK_DROP_PERCENT", 2);
    let total = (rate * seconds) as usize;

    let gw = Arc::new(Gateway::start(&["--history-max-age", "2s", "--workers", "1"]).await);
    let rss_start = gw.rss_kib();
    let reconnects = Arc::new(AtomicU64::new(0));

    // Each client follows two neighbouring channels; events carry "channel:sequence".
    let expected = |channel: usize| (0..total).filter(|i| i % channels == channel).count();
    let mut clients = Vec::new();
    for client in 0..subscribers {
        let mine = [client % channels, (client + 1) % channels];
        let query = format!("channel=soak{},soak{}", mine[0], mine[1]);
        let counts = [expected(mine[0]), expected(mine[1])];
        let mut stream = gw.subscribe(&query).await;
        let gw = Arc::clone(&gw);
        let reconnects = Arc::clone(&reconnects);
        clients.push(tokio::spawn(async move {
            let mut next = [0usize; 2];
            let mut rng = fastrand::Rng::with_seed(client as u64);
            while next != counts {
                let event = stream.next_event().await;
                let (channel, seq) = event.data.split_once(':').unwrap();
                let slot = mine
                    .iter()
                    .position(|&c| format!("soak{c}") == channel)
                    .unwrap();
                let seq: usize = seq.parse().unwrap();
                assert_eq!(
                    seq, next[slot],
                    "client {client}: {channel} out of order, lost or repeated"
                );
                next[slot] += 1;
                if rng.u64(0..100) < drop_percent && next != counts {
                    drop(stream);
                    stream = gw.resume(&query, &event.last_event_id).await;
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    gw.wait_for_stats("every client connected", |s| {
        s["connections"] == subscribers
    })
    .await;

    let started = Instant::now();
    let mut per_channel = vec![0usize; channels];
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut rss_peak = 0;
    for i in 0..total {
        tick.tick().await;
        let channel = i % channels;
        let data = format!("soak{channel}:{}", per_channel[channel]);
        per_channel[channel] += 1;
        let body = json!({"channel": format!("soak{channel}"), "id": i.to_string(), "data": data});
        assert_eq!(gw.publish(body).await.0, 202);
        if i % 100 == 0 {
            rss_peak = rss_peak.max(gw.rss_kib());
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    for client in clients {
        client.await.unwrap();
    }
    rss_peak = rss_peak.max(gw.rss_kib());
    let stats = gw.wait_for_stats("clients gone and histories expired", |s| {
        s["connections"] == 0 && s["channels"].as_object().is_some_and(|c| c.is_empty())
    });
    let stats = stats.await;
    let rss_end = gw.rss_kib();

    let report = json!({
        "subscribers": subscribers,
        "channels": channels,
        "events": total,
        "publish_seconds": (publish_seconds * 10.0).round() / 10.0,
        "reconnects": reconnects.load(Ordering::Relaxed),
        "resumes": stats["resumes"],
        "gaps": stats["gaps"],
        "lost": 0,
        "duplicates": 0,
        "rss_kib": {"start": rss_start, "peak": rss_peak, "end": rss_end},
    });
    println!("soak: {report}");
    assert_eq!(stats["gaps"], 0, "every resume found its id");
    assert!(
        reconnects.load(Ordering::Relaxed) > 0,
        "clients did drop and resume"
    );
    let grown = rss_end.saturating_sub(rss_start);
    let held = rss_peak.saturating_sub(rss_start).max(1);
    assert!(
        grown <= 16 * 1024 || grown * 2 <= held,
        "memory not released: start {rss_start} KiB, peak {rss_peak} KiB, end {rss_end} KiB"
    );
}
