//! The hub: the registry of live channels, the one publish path, and subscribe with resume.
//!
//! Every source of events (an HTTP publish, an AMQP delivery) ends in [`Hub::publish`], so the
//! two paths cannot drift apart. A publish returns once its event is retained in the channel's
//! history; the channel's broadcaster fans it out afterwards, in order. A channel comes to life
//! when it is first used and retires when it has neither subscribers nor history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, WeakUnboundedSender};
use tokio::sync::oneshot;

use crate::broadcaster::{Broadcaster, ChannelState, Command, Delivery};
use crate::channel::ChannelName;
use crate::event::{encode_frame, Event, EventId};
use crate::history::Frame;
use crate::subscriber::{CloseReason, Outbox};

/// How many events each channel retains for resume, by default.
pub const DEFAULT_HISTORY_LEN: usize = 1000;
/// How long each channel retains an event for resume, by default.
pub const DEFAULT_HISTORY_MAX_AGE: Duration = Duration::from_secs(3600);
/// How many channels may be live at once, by default.
pub const DEFAULT_MAX_CHANNELS: usize = 10_000;
/// How many frames a subscriber may fall behind before it is disconnected, by default.
pub const DEFAULT_OUTBOX_CAPACITY: usize = 1024;
/// How many channels one connection may subscribe to, by default.
pub const DEFAULT_MAX_CHANNELS_PER_CONNECTION: usize = 64;

/// HubSettings are the hub's limits.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Events retained per channel.
    pub history_len: usize,
    /// How long an event is retained.
    pub history_max_age: Duration,
    /// Live channels at once.
    pub max_channels: usize,
    /// When set, the only channels that exist; any other name is unknown.
    pub allowed_channels: Option<HashSet<ChannelName>>,
    /// Frames a subscriber may have pending before it is disconnected.
    pub outbox_capacity: usize,
    /// Open subscriber connections at once.
    pub max_connections: usize,
    /// Channels per subscriber connection.
    pub max_channels_per_connection: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            history_len: DEFAULT_HISTORY_LEN,
            history_max_age: DEFAULT_HISTORY_MAX_AGE,
            max_channels: DEFAULT_MAX_CHANNELS,
            allowed_channels: None,
            outbox_capacity: DEFAULT_OUTBOX_CAPACITY,
            max_connections: 10_000,
            max_channels_per_connection: DEFAULT_MAX_CHANNELS_PER_CONNECTION,
        }
    }
}

/// HubError is why the hub refused a publish or a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// Only configured channels exist, and this is not one.
    #[error("channel {0} is not configured on this gateway")]
    UnknownChannel(ChannelName),
    /// The live-channel limit is reached.
    #[error("the gateway already has {0} live channels, its limit")]
    TooManyChannels(usize),
    /// The subscriber-connection limit is reached.
    #[error("the gateway already has {0} open subscriber connections, its limit")]
    TooManyConnections(usize),
    /// A subscription named more channels than one connection may have.
    #[error("a connection may subscribe to at most {0} channels")]
    TooManyChannelsPerConnection(usize),
    /// No channel was named.
    #[error("no channel given: use ?channel=NAME (repeat it, or separate names with commas)")]
    NoChannel,
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// Resume says where a new subscription starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Live events only.
    Live,
    /// Every retained event, then live (`Last-Event-ID: earliest`).
    Earliest,
    /// The events after this id, or a `gap` event then every retained event if it is not retained.
    After(String),
}

/// Published is what became of an event handed to the hub.
#[derive(Clone, Debug)]
pub struct Published {
    /// The event's id.
    pub id: EventId,
    /// Its channel.
    pub channel: ChannelName,
    /// Whether it was accepted (retained, fan-out follows) or dropped as a duplicate.
    pub delivery: Delivery,
}

/// HubCounters are the hub's running totals.
#[derive(Debug, Default)]
pub struct HubCounters {
    /// Events accepted: added to a history and queued for fan-out.
    pub published: AtomicU64,
    /// Events handed to subscribers: one per event per subscriber.
    pub delivered: AtomicU64,
    /// Bytes handed to subscriber connections.
    pub bytes_written: AtomicU64,
    /// Events dropped because their id was still retained (redeliveries).
    pub duplicates: AtomicU64,
    /// Subscribers disconnected for falling behind.
    pub slow_disconnects: AtomicU64,
    /// Subscriptions that resumed after a retained id.
    pub resumes: AtomicU64,
    /// Subscriptions whose `Last-Event-ID` was not retained (a `gap` event was sent).
    pub gaps: AtomicU64,
}

/// ChannelHandle is how publishers and subscribers reach a channel. While one is out, the
/// channel does not retire.
#[derive(Clone)]
struct ChannelHandle {
    commands: UnboundedSender<Command>,
    state: Arc<ChannelState>,
}

/// Shared is the state behind every [`Hub`] handle and every broadcaster.
pub(crate) struct Shared {
    pub(crate) settings: HubSettings,
    pub(crate) counters: HubCounters,
    channels: Mutex<HashMap<ChannelName, ChannelHandle>>,
    seq: AtomicU64,
    next_subscriber: AtomicU64,
    connections: AtomicUsize,
    closed: AtomicBool,
    runtime: Handle,
}

impl Shared {
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Retire removes an idle channel from the registry, unless a handle to it is still out or a
    /// command is waiting; it returns whether the broadcaster may stop.
    pub(crate) fn retire(&self, name: &ChannelName, commands: &UnboundedReceiver<Command>) -> bool {
        let mut channels = self.channels.lock();
        let unused = channels
            .get(name)
            .is_some_and(|h| h.commands.strong_count() == 1)
            && commands.is_empty();
        if unused {
            channels.remove(name);
        }
        unused
    }
}

/// Hub is a cheap-to-clone handle to the gateway's channels.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// New makes a hub whose broadcasters run on `runtime`.
    pub fn new(settings: HubSettings, runtime: Handle) -> Self {
        let shared = Shared {
            settings,
            counters: HubCounters::default(),
            channels: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            next_subscriber: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            runtime,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Settings are the limits the hub was made with.
    pub fn settings(&self) -> &HubSettings {
        &self.shared.settings
    }

    /// Counters are the hub's running totals.
    pub fn counters(&self) -> &HubCounters {
        &self.shared.counters
    }

    /// Check_channel tells whether a channel may be used on this gateway.
    pub fn check_channel(&self, name: &ChannelName) -> Result<(), HubError> {
        match &self.shared.settings.allowed_channels {
            Some(allowed) if !allowed.contains(name) => Err(HubError::UnknownChannel(name.clone())),
            _ => Ok(()),
        }
    }

    /// Publish adds an event to its channel's history and returns once the event is retained;
    /// fan-out to the subscribers follows, in the order events were accepted. It waits only when
    /// the channel's fan-out is as many events behind as a subscriber's outbox holds. This is the
    /// one path every event source goes through.
    pub async fn publish(&self, event: Event) -> Result<Published, HubError> {
        let bytes = event.encode();
        let channel = self.channel(&event.channel)?;
        let delivery = channel
            .state
            .accept(&self.shared, &channel.commands, event.id.clone(), bytes)
            .await?;
        if delivery == Delivery::Duplicate {
            tracing::debug!(channel = %event.channel, id = %event.id, "duplicate event dropped");
        }
        Ok(Published {
            id: event.id,
            channel: event.channel,
            delivery,
        })
    }

    /// Subscribe joins the channels and prepares what the subscriber gets first, per `resume`;
    /// everything published after that point arrives in the subscription's outbox.
    pub async fn subscribe(
        &self,
        channels: &[ChannelName],
        resume: Resume,
    ) -> Result<Subscription, HubError> {
        let settings = &self.shared.settings;
        if channels.is_empty() {
            return Err(HubError::NoChannel);
        }
        if channels.len() > settings.max_channels_per_connection {
            return Err(HubError::TooManyChannelsPerConnection(
                settings.max_channels_per_connection,
            ));
        }
        for name in channels {
            self.check_channel(name)?;
        }
        let mut subscription = Subscription::open(&self.shared, channels)?;
        // A live subscriber needs no history: the broadcasters, which also fan out, then do not
        // copy theirs for it (a reconnect storm is thousands of subscriptions at once).
        let with_history = resume != Resume::Live;
        let mut history = Vec::new();
        for name in channels {
            let commands = self.channel(name)?.commands;
            let (reply, snapshot) = oneshot::channel();
            let command = Command::Subscribe {
                subscriber: subscription.id,
                outbox: Arc::clone(&subscription.outbox),
                with_history,
                reply,
            };
            commands.send(command).map_err(|_| HubError::ShuttingDown)?;
            subscription.joined.push(commands.downgrade());
            history.extend(snapshot.await.map_err(|_| HubError::ShuttingDown)?);
        }
        let live = subscription.outbox.drain();
        let (gap, backlog) = backlog(history, live, &resume, &self.shared.counters);
        subscription.gap = gap;
        subscription.backlog = backlog;
        Ok(subscription)
    }

    /// Stats reports open connections and each live channel's figures.
    pub fn stats(&self) -> HubStats {
        let counters = &self.shared.counters;
        // Read under the registry's lock (which every publish takes briefly), sorted after it.
        let channels: Vec<_> = self
            .shared
            .channels
            .lock()
            .iter()
            .map(|(name, handle)| {
                let c = &handle.state.counters;
                let stats = ChannelStats {
                    subscribers: c.subscribers.load(Ordering::Relaxed),
                    published: c.published.load(Ordering::Relaxed),
                    retained: c.retained.load(Ordering::Relaxed),
                };
                (name.clone(), stats)
            })
            .collect();
        let channels = channels.into_iter().collect();
        HubStats {
            connections: self.shared.connections.load(Ordering::Relaxed),
            channels,
            events_published: counters.published.load(Ordering::Relaxed),
            duplicates_dropped: counters.duplicates.load(Ordering::Relaxed),
            slow_subscriber_disconnects: counters.slow_disconnects.load(Ordering::Relaxed),
            resumes: counters.resumes.load(Ordering::Relaxed),
            gaps: counters.gaps.load(Ordering::Relaxed),
        }
    }

    /// Close ends every subscriber's stream and stops every channel; later calls are refused.
    /// The events already accepted are fanned out before the streams end.
    pub fn close(&self) {
        let channels = self.shared.channels.lock();
        self.shared.closed.store(true, Ordering::SeqCst);
        for handle in channels.values() {
            handle.state.close(&handle.commands);
        }
    }

    /// Is_closed tells whether [`Hub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Channel returns a handle to a channel, starting its broadcaster if needed.
    fn channel(&self, name: &ChannelName) -> Result<ChannelHandle, HubError> {
        self.check_channel(name)?;
        let mut channels = self.shared.channels.lock();
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(HubError::ShuttingDown);
        }
        if let Some(handle) = channels.get(name) {
            return Ok(handle.clone());
        }
        let max = self.shared.settings.max_channels;
        if channels.len() >= max {
            return Err(HubError::TooManyChannels(max));
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ChannelState::new(&self.shared.settings));
        let broadcaster = Broadcaster::new(
            name.clone(),
            receiver,
            Arc::clone(&state),
            Arc::clone(&self.shared),
        );
        self.shared.runtime.spawn(broadcaster.run());
        let handle = ChannelHandle { commands, state };
        channels.insert(name.clone(), handle.clone());
        Ok(handle)
    }
}

/// Backlog orders what a new subscriber gets before live frames: the retained frames `resume`
/// asks for (after a `gap` event if its id is not retained), then the live frames that arrived
/// while it was joining, all in arrival order.
fn backlog(
    mut history: Vec<Arc<Frame>>,
    live: Vec<Arc<Frame>>,
    resume: &Resume,
    counters: &HubCounters,
) -> (Option<Bytes>, Vec<Arc<Frame>>) {
    history.sort_by_key(|f| f.seq());
    let (gap, mut frames) = match resume {
        Resume::Live => (None, Vec::new()),
        Resume::Earliest => (None, history),
        Resume::After(last) => match history.iter().rposition(|f| f.id.as_str() == last) {
            Some(at) => {
                counters.resumes.fetch_add(1, Ordering::Relaxed);
                (None, history.split_off(at + 1))
            }
            None => {
                counters.gaps.fetch_add(1, Ordering::Relaxed);
                let oldest = history.first().map(|f| f.id.as_str());
                (Some(gap_frame(last, oldest)), history)
            }
        },
    };
    frames.extend(live);
    frames.sort_by_key(|f| f.seq());
    (gap, frames)
}

/// Gap_frame is the `gap` event: no `id:` line, JSON data naming the id sent and the oldest kept.
fn gap_frame(last: &str, oldest: Option<&str>) -> Bytes {
    let data = serde_json::json!({ "lastEventId": last, "oldestId": oldest }).to_string();
    encode_frame(None, Some("gap"), &data)
}

/// Subscription is one subscriber connection's membership in its channels. It holds a
/// connection slot; dropping it leaves every channel and frees the slot.
pub struct Subscription {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) gap: Option<Bytes>,
    pub(crate) backlog: Vec<Arc<Frame>>,
    id: u64,
    joined: Vec<WeakUnboundedSender<Command>>,
    shared: Arc<Shared>,
}

impl Subscription {
    /// Open takes a connection slot, or refuses when none is free.
    fn open(shared: &Arc<Shared>, channels: &[ChannelName]) -> Result<Self, HubError> {
        let max = shared.settings.max_connections;
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= max {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            return Err(HubError::TooManyConnections(max));
        }
        let id = shared.next_subscriber.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(subscriber = id, channels = ?channels, "subscriber connected");
        Ok(Self {
            outbox: Arc::new(Outbox::new(shared.settings.outbox_capacity)),
            gap: None,
            backlog: Vec::new(),
            id,
            joined: Vec::with_capacity(channels.len()),
            shared: Arc::clone(shared),
        })
    }

    /// Counters are the hub's running totals, for the subscriber body that adds to them.
    pub(crate) fn counters(&self) -> &HubCounters {
        &self.shared.counters
    }

    /// Ended records why the stream ended (the broadcaster already counted it).
    pub(crate) fn ended(&self, reason: CloseReason) {
        // The channels are in the "subscriber connected" line with the same id.
        tracing::debug!(subscriber = self.id, ?reason, "subscriber stream ended");
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for commands in self.joined.drain(..) {
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(Command::Unsubscribe {
                    subscriber: self.id,
                });
            }
        }
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!(subscriber = self.id, "subscriber disconnected");
    }
}

/// HubStats is the hub's part of `/stats`.
#[derive(Debug, Serialize)]
pub struct HubStats {
    /// Open subscriber connections.
    pub connections: usize,
    /// Each live channel's figures, by name.
    pub channels: BTreeMap<ChannelName, ChannelStats>,
    /// Events published since start.
    pub events_published: u64,
    /// Redelivered events dropped because their id was still retained.
    pub duplicates_dropped: u64,
    /// Subscribers disconnected for falling behind.
    pub slow_subscriber_disconnects: u64,
    /// Subscriptions resumed after a retained id.
    pub resumes: u64,
    /// Subscriptions sent a `gap` event.
    pub gaps: u64,
}

/// ChannelStats are one channel's figures.
#[derive(Debug, Serialize)]
pub struct ChannelStats {
    /// Subscribers now.
    pub subscribers: usize,
    /// Events published since the channel came to life.
    pub published: u64,
    /// Events retained for resume.
    pub retained: usize,
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use tokio::runtime::Runtime;

    use super::*;
    /// How many accepted events may wait for fan-out with the default settings.
    const FANOUT_BACKLOG: usize = DEFAULT_OUTBOX_CAPACITY;

    /// Stalled_hub makes a hub whose broadcasters run only inside the returned runtime's
    /// `block_on`: until a test drives it, nothing is fanned out.
    fn stalled_hub(settings: HubSettings) -> (Hub, Runtime) {
        let broadcasters = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let hub = Hub::new(settings, broadcasters.handle().clone());
        (hub, broadcasters)
    }

    /// Drive runs the broadcasters until `future` is done; a wait past 10 s is a failure.
    fn drive<F: std::future::Future>(broadcasters: &Runtime, future: F) -> F::Output {
        let limit = Duration::from_secs(10);
        broadcasters
            .block_on(async { tokio::time::timeout(limit, future).await })
            .expect("done once the broadcasters ran")
    }

    /// Wait_for_fan_out returns once the broadcaster has handled every command queued so far: a
    /// new subscription is answered only after them.
    fn wait_for_fan_out(hub: &Hub, broadcasters: &Runtime) {
        drop(drive(broadcasters, hub.subscribe(&[channel()], Resume::Live)).unwrap());
    }

    fn channel() -> ChannelName {
        ChannelName::parse("c").unwrap()
    }

    fn event(id: u64) -> Event {
        event_on(channel(), id)
    }

    fn event_on(channel: ChannelName, id: u64) -> Event {
        Event::new(channel, Some(&id.to_string()), None, String::new()).unwrap()
    }

    /// Publish_at_once publishes an event and requires the answer on the first poll.
    fn publish_at_once(hub: &Hub, id: u64) -> Delivery {
        publish_on_at_once(hub, channel(), id)
    }

    fn publish_on_at_once(hub: &Hub, channel: ChannelName, id: u64) -> Delivery {
        hub.publish(event_on(channel, id))
            .now_or_never()
            .expect("publish answers without waiting for fan-out")
            .unwrap()
            .delivery
    }

    fn ids(frames: &[Arc<Frame>]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| f.id.as_str().parse().unwrap())
            .collect()
    }

    /// Received is what a subscriber got so far: its backlog, then its outbox.
    fn received(subscription: &Subscription) -> Vec<u64> {
        let mut frames = subscription.backlog.clone();
        frames.extend(subscription.outbox.drain());
        ids(&frames)
    }

    #[test]
    fn a_publish_answers_once_the_event_is_retained_while_no_broadcaster_runs() {
        let (hub, _broadcasters) = stalled_hub(HubSettings::default());
        for id in 1..=3 {
            assert_eq!(publish_at_once(&hub, id), Delivery::Accepted);
        }
        let stats = hub.stats();
        assert_eq!(stats.events_published, 3);
        assert_eq!(
            stats.channels[&ChannelName::parse("c").unwrap()].published,
            3
        );
        assert_eq!(
            stats.channels[&ChannelName::parse("c").unwrap()].retained,
            3
        );
    }

    #[test]
    fn a_publisher_waits_once_a_full_backlog_waits_for_fan_out_and_goes_on_when_it_proceeds() {
        let (hub, broadcasters) = stalled_hub(HubSettings::default());
        for id in 1..=FANOUT_BACKLOG as u64 {
            publish_at_once(&hub, id);
        }
        let mut next = Box::pin(hub.publish(event(FANOUT_BACKLOG as u64 + 1)));
        assert!(
            (&mut next).now_or_never().is_none(),
            "the publish past the backlog waits for fan-out"
        );
        let published = drive(&broadcasters, next).unwrap();
        assert_eq!(published.delivery, Delivery::Accepted);
    }

    #[test]
    fn a_duplicate_gives_its_fan_out_permit_back_at_once() {
        let (hub, _broadcasters) = stalled_hub(HubSettings::default());
        publish_at_once(&hub, 1);
        for _ in 0..2 * FANOUT_BACKLOG {
            assert_eq!(publish_at_once(&hub, 1), Delivery::Duplicate);
        }
        assert_eq!(publish_at_once(&hub, 2), Delivery::Accepted);
        assert_eq!(hub.stats().duplicates_dropped, 2 * FANOUT_BACKLOG as u64);
    }

    #[test]
    fn subscribers_joining_behind_accepted_events_get_each_event_once_in_order() {
        let (hub, broadcasters) = stalled_hub(HubSettings::default());
        let channels = [channel()];
        for id in 1..=100 {
            publish_at_once(&hub, id);
        }
        // The first poll queues each Subscribe behind events 1..=100, ahead of 101..=200; the
        // broadcaster then meets them in the middle of a batch of commands.
        let mut earliest = Box::pin(hub.subscribe(&channels, Resume::Earliest));
        let mut live = Box::pin(hub.subscribe(&channels, Resume::Live));
        assert!((&mut earliest).now_or_never().is_none());
        assert!((&mut live).now_or_never().is_none());
        for id in 101..=200 {
            publish_at_once(&hub, id);
        }
        let (earliest, live) = drive(&broadcasters, async {
            (earliest.await.unwrap(), live.await.unwrap())
        });
        wait_for_fan_out(&hub, &broadcasters);
        assert_eq!(received(&earliest), (1..=200).collect::<Vec<_>>());
        assert_eq!(received(&live), (101..=200).collect::<Vec<_>>());
    }

    #[test]
    fn events_accepted_before_close_reach_subscribers_before_their_streams_end() {
        let (hub, broadcasters) = stalled_hub(HubSettings::default());
        let subscription = drive(&broadcasters, hub.subscribe(&[channel()], Resume::Live)).unwrap();
        // 100 is not a multiple of the broadcaster's batch: Close comes in the middle of one.
        for id in 1..=100 {
            publish_at_once(&hub, id);
        }
        hub.close();
        assert!(matches!(
            hub.publish(event(101)).now_or_never(),
            Some(Err(HubError::ShuttingDown))
        ));
        // The broadcaster lets go of the outbox once it has handled Close.
        drive(&broadcasters, async {
            while Arc::strong_count(&subscription.outbox) > 1 {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(received(&subscription), (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn close_refuses_a_publisher_waiting_for_fan_out() {
        let (hub, _broadcasters) = stalled_hub(HubSettings::default());
        for id in 1..=FANOUT_BACKLOG as u64 {
            publish_at_once(&hub, id);
        }
        let mut waiting = Box::pin(hub.publish(event(0)));
        assert!((&mut waiting).now_or_never().is_none());
        hub.close();
        assert!(matches!(
            (&mut waiting).now_or_never(),
            Some(Err(HubError::ShuttingDown))
        ));
    }

    #[test]
    fn a_subscriber_whose_outbox_cannot_take_a_whole_batch_is_dropped_and_counted() {
        let settings = HubSettings {
            outbox_capacity: 10,
            ..HubSettings::default()
        };
        let (hub, broadcasters) = stalled_hub(settings);
        let slow = drive(&broadcasters, hub.subscribe(&[channel()], Resume::Live)).unwrap();
        for id in 1..=7 {
            publish_at_once(&hub, id);
        }
        wait_for_fan_out(&hub, &broadcasters);
        // 7 pending and a batch of 3: the outbox is exactly full.
        for id in 8..=10 {
            publish_at_once(&hub, id);
        }
        wait_for_fan_out(&hub, &broadcasters);
        assert_eq!(hub.stats().slow_subscriber_disconnects, 0);
        // One more than the full outbox holds.
        publish_at_once(&hub, 11);
        wait_for_fan_out(&hub, &broadcasters);
        assert_eq!(hub.stats().slow_subscriber_disconnects, 1);
        assert!(
            received(&slow).is_empty(),
            "a lagged outbox drops what it held"
        );
        assert_eq!(hub.counters().delivered.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn a_subscriber_of_two_channels_receives_in_seq_order_so_a_resume_replays_exactly_the_rest() {
        let (hub, broadcasters) = stalled_hub(HubSettings::default());
        let (x, y) = (
            ChannelName::parse("x").unwrap(),
            ChannelName::parse("y").unwrap(),
        );
        let both = [x.clone(), y.clone()];
        let subscription = drive(&broadcasters, hub.subscribe(&both, Resume::Live)).unwrap();
        // y's broadcaster is woken first and takes 1 and 3 in one batch; x's takes 2 after it.
        // Fan-out order is not acceptance order, and the seq must follow fan-out order.
        publish_on_at_once(&hub, y.clone(), 1);
        publish_on_at_once(&hub, x, 2);
        publish_on_at_once(&hub, y, 3);
        drop(drive(&broadcasters, hub.subscribe(&both, Resume::Live)).unwrap());
        let got = subscription.outbox.drain();
        assert_eq!(got.len(), 3);
        assert!(
            got.windows(2).all(|w| w[0].seq() < w[1].seq()),
            "received in seq order: {got:?}"
        );
        for (at, last) in got.iter().enumerate() {
            let resume = Resume::After(last.id.as_str().to_string());
            let resumed = drive(&broadcasters, hub.subscribe(&both, resume)).unwrap();
            assert_eq!(ids(&resumed.backlog), ids(&got[at + 1..]));
        }
    }
}
