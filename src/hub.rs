//! The hub: the registry of live channels, the one publish path, and subscribe with resume.
//!
//! Every source of events (an HTTP publish, an AMQP delivery) ends in [`Hub::publish`], so the
//! two paths cannot drift apart. A channel comes to life when it is first used and retires when
//! it has neither subscribers nor history.

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

use crate::broadcaster::{Broadcaster, ChannelCounters, Command, Delivery};
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
    /// Whether it was fanned out or dropped as a duplicate.
    pub delivery: Delivery,
}

/// HubCounters are the hub's running totals.
#[derive(Debug, Default)]
pub struct HubCounters {
    /// Events added to a history and fanned out.
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

struct ChannelHandle {
    commands: UnboundedSender<Command>,
    counters: Arc<ChannelCounters>,
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

    /// Publish adds an event to its channel's history and hands it to every subscriber; it
    /// returns once that is done. This is the one path every event source goes through.
    pub async fn publish(&self, event: Event) -> Result<Published, HubError> {
        let bytes = event.encode();
        let (reply, delivered) = oneshot::channel();
        let command = Command::Publish {
            id: event.id.clone(),
            bytes,
            reply,
        };
        self.channel(&event.channel)?
            .send(command)
            .map_err(|_| HubError::ShuttingDown)?;
        let delivery = delivered.await.map_err(|_| HubError::ShuttingDown)?;
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
            let commands = self.channel(name)?;
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
        let channels = self
            .shared
            .channels
            .lock()
            .iter()
            .map(|(name, handle)| {
                let c = &handle.counters;
                let stats = ChannelStats {
                    subscribers: c.subscribers.load(Ordering::Relaxed),
                    published: c.published.load(Ordering::Relaxed),
                    retained: c.retained.load(Ordering::Relaxed),
                };
                (name.to_string(), stats)
            })
            .collect();
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
    pub fn close(&self) {
        let channels = self.shared.channels.lock();
        self.shared.closed.store(true, Ordering::SeqCst);
        for handle in channels.values() {
            let _ = handle.commands.send(Command::Close);
        }
    }

    /// Is_closed tells whether [`Hub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Channel returns the command sender of a channel's broadcaster, starting it if needed.
    fn channel(&self, name: &ChannelName) -> Result<UnboundedSender<Command>, HubError> {
        self.check_channel(name)?;
        let mut channels = self.shared.channels.lock();
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(HubError::ShuttingDown);
        }
        if let Some(handle) = channels.get(name) {
            return Ok(handle.commands.clone());
        }
        let max = self.shared.settings.max_channels;
        if channels.len() >= max {
            return Err(HubError::TooManyChannels(max));
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(ChannelCounters::default());
        let broadcaster = Broadcaster::new(
            name.clone(),
            receiver,
            Arc::clone(&counters),
            Arc::clone(&self.shared),
        );
        self.shared.runtime.spawn(broadcaster.run());
        let handle = ChannelHandle {
            commands: commands.clone(),
            counters,
        };
        channels.insert(name.clone(), handle);
        Ok(commands)
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
    history.sort_by_key(|f| f.seq);
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
    frames.sort_by_key(|f| f.seq);
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
    channels: Vec<ChannelName>,
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
            channels: channels.to_vec(),
            shared: Arc::clone(shared),
        })
    }

    /// Counters are the hub's running totals, for the subscriber body that adds to them.
    pub(crate) fn counters(&self) -> &HubCounters {
        &self.shared.counters
    }

    /// Ended records why the stream ended (the broadcaster already counted it).
    pub(crate) fn ended(&self, reason: CloseReason) {
        tracing::debug!(subscriber = self.id, channels = ?self.channels, ?reason, "subscriber stream ended");
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
    pub channels: BTreeMap<String, ChannelStats>,
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
