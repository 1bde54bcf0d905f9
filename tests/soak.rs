//! Soak: subscribers over several channels, a steady publish rate, clients dropping and
//! resuming with Last-Event-ID at random. Every client must receive every event of its
//! channels exactly once and in order across its reconnects; once the clients leave and the
//! histories expire, channels are released, and memory stops growing from round to round (no
//! leak).
//!
//! Small in the normal suite; `scripts/soak.sh` runs it large. Sizes come from the environment:
//! SOAK_SUBSCRIBERS, SOAK_CHANNELS, SOAK_RATE (events per second, all channels), SOAK_SECONDS,
//! SOAK_DROP_PERCENT (chance, per event, that a client drops and resumes), SOAK_ROUNDS (3 or
//! more).

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

/// Sizes of one soak round.
#[derive(Clone, Copy)]
struct Sizes {
    subscribers: usize,
    channels: usize,
    rate: u64,
    total: usize,
    drop_percent: u64,
}

/// One round's figures.
struct Round {
    reconnects: u64,
    resumes: u64,
    gaps: u64,
    publish_seconds: f64,
    rss_peak: u64,
    rss_end: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_drop_and_resume_get_every_event_exactly_once_and_memory_is_released() {
    let seconds = env("SOAK_SECONDS", 4);
    let rate = env("SOAK_RATE", 200);
    let sizes = Sizes {
        subscribers: env("SOAK_SUBSCRIBERS", 100) as usize,
        channels: env("SOAK_CHANNELS", 4) as usize,
        rate,
        total: (rate * seconds) as usize,
        drop_percent: env("SOAK_DROP_PERCENT", 2),
    };
    let gw = Arc::new(Gateway::start(&["--history-max-age", "2s", "--workers", "1"]).await);
    let rss_start = gw.rss_kib();
    // Several rounds in one process: the allocator keeps freed memory for reuse, so "back to the
    // start" is not the test of a leak; memory that stops growing from round to round is.
    let mut rounds = Vec::new();
    for n in 0..env("SOAK_ROUNDS", 3).max(3) as usize {
        rounds.push(round(&gw, sizes, n).await);
    }
    let figures = |r: &Round| {
        json!({
            "publish_seconds": (r.publish_seconds * 10.0).round() / 10.0,
            "reconnects": r.reconnects,
            "resumes": r.resumes,
            "gaps": r.gaps,
            "rss_kib_peak": r.rss_peak,
            "rss_kib_after_clients_left": r.rss_end,
        })
    };
    let report = json!({
        "subscribers": sizes.subscribers,
        "channels": sizes.channels,
        "events_per_round": sizes.total,
        "rss_kib_start": rss_start,
        "rounds": rounds.iter().map(figures).collect::<Vec<_>>(),
    });
    println!("soak: {report}");
    for r in &rounds {
        assert_eq!(r.gaps, 0, "every resume found its id");
        assert!(r.reconnects > 0, "clients did drop and resume");
    }
    // The allocator's pools fill up over the first rounds and then level off; a leak adds about
    // the same every round. So the last round may add at most half what the second added.
    let ends: Vec<u64> = rounds.iter().map(|r| r.rss_end).collect();
    let second = ends[1].saturating_sub(ends[0]);
    let last = ends[ends.len() - 1].saturating_sub(ends[ends.len() - 2]);
    assert!(
        last <= (second / 2).max(1024),
        "memory keeps growing from round to round (a leak): {ends:?} KiB"
    );
}

/// Round runs one soak round, with ids and sequence numbers of its own, until every client has
/// every event, and then until the clients are gone and the histories have expired.
async fn round(gw: &Arc<Gateway>, sizes: Sizes, round: usize) -> Round {
    let Sizes {
        subscribers,
        channels,
        rate,
        total,
        drop_percent,
    } = sizes;
    let reconnects = Arc::new(AtomicU64::new(0));
    let stats_before = gw.stats().await;
    // Each client follows two neighbouring channels; events carry "channel:sequence".
    let expected = |channel: usize| (0..total).filter(|i| i % channels == channel).count();
    let mut clients = Vec::new();
    for client in 0..subscribers {
        let mine = [client % channels, (client + 1) % channels];
        let query = format!("channel=soak{},soak{}", mine[0], mine[1]);
        let counts = [expected(mine[0]), expected(mine[1])];
        let mut stream = gw.subscribe(&query).await;
        let gw = Arc::clone(gw);
        let reconnects = Arc::clone(&reconnects);
        clients.push(tokio::spawn(async move {
            let mut next = [0usize; 2];
            let mut rng = fastrand::Rng::with_seed((round * 1_000_000 + client) as u64);
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

    let started = Instant::now();
    let mut per_channel = vec![0usize; channels];
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut rss_peak = 0;
    for i in 0..total {
        tick.tick().await;
        let channel = i % channels;
        let data = format!("soak{channel}:{}", per_channel[channel]);
        per_channel[channel] += 1;
        let id = format!("r{round}-{i}");
        let body = json!({"channel": format!("soak{channel}"), "id": id, "data": data});
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
    let stats = gw
        .wait_for_stats("clients gone and histories expired", |s| {
            s["connections"] == 0 && s["channels"].as_object().is_some_and(|c| c.is_empty())
        })
        .await;
    let count = |name: &str| stats[name].as_u64().unwrap() - stats_before[name].as_u64().unwrap();
    Round {
        reconnects: reconnects.load(Ordering::Relaxed),
        resumes: count("resumes"),
        gaps: count("gaps"),
        publish_seconds,
        rss_peak,
        rss_end: gw.rss_kib(),
    }
}
