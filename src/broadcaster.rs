//! A channel's broadcaster: the task that fans its events out, and the state it shares with
//! publishers.
//!
//! A publish is accepted under the `ChannelState` lock, which is held only to check the id,
//! retain the frame in the history and queue it as a `Command`, so the queue holds frames in
//! history order; the publisher does not wait for fan-out, except when as many accepted events
//! of the channel still wait for it as a subscriber's outbox holds (see `ChannelState::new`).
//! The broadcaster handles its commands in queue order, so a subscriber joins between two
//! events, never during one: the history snapshot it gets (the frames fanned out before it
//! joined) and the live frames it receives afterwards neither overlap nor leave a hole. Fan-out
//! gives each frame its hub-wide `seq` and hands consecutive frames to each outbox at once
//! without waiting; a subscriber whose outbox overflows is dropped here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::channel::ChannelName;
use crate::event::EventId;
use crate::history::{Frame, History};
use crate::hub::{HubError, HubSettings, Shared};
use crate::subscriber::{CloseReason, Outbox, Push};

/// How long an idle broadcaster waits before it tries again to retire, when a handle to it was
/// still out the last time.
const RETIRE_RECHECK: Duration = Duration::from_secs(1);
/// How many commands a broadcaster takes per wake-up; the frames of consecutive publishes among
/// them are fanned out together, one push per subscriber.
const COMMAND_BATCH: usize = 64;

/// Command is what a broadcaster is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Fan out a frame that is in the history, waiting for fan-out (its `seq` is still 0).
    Publish(Arc<Frame>),
    /// Add a subscriber for live frames and reply with the history fanned out so far (empty
    /// when the subscriber starts live and does not need it).
    Subscribe {
        subscriber: u64,
        outbox: Arc<Outbox>,
        with_history: bool,
        reply: oneshot::Sender<Vec<Arc<Frame>>>,
    },
    /// Remove a subscriber.
    Unsubscribe { subscriber: u64 },
    /// Close every subscriber's stream and stop.
    Close,
}

/// Delivery is what became of a published event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It was added to the history and queued for fan-out to the channel's subscribers.
    Accepted,
    /// An event with the same id is still in the history (a redelivery): it was dropped.
    Duplicate,
}

/// ChannelCounters are a channel's figures, read by `/stats`.
#[derive(Debug, Default)]
pub(crate) struct ChannelCounters {
    pub(crate) subscribers: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) retained: AtomicUsize,
}

/// ChannelState is what a channel's publishers share with its broadcaster: the history behind a
/// short lock, the permits that bound how many accepted events wait for fan-out, and the figures.
#[derive(Debug)]
pub(crate) struct ChannelState {
    pub(crate) counters: ChannelCounters,
    history: Mutex<History>,
    /// One permit per accepted event that may wait for fan-out; closed, under the history lock,
    /// when the channel is closed.
    fanout: Semaphore,
}

impl ChannelState {
    /// New makes a channel's state. As many accepted events may wait for fan-out as a
    /// subscriber's outbox holds (`--subscriber-queue`): a publish answers once its event is
    /// retained, so without a bound a publisher faster than fan-out (an HTTP client, a broker's
    /// backlog) would grow the queue without limit; with it a burst of that size is accepted at
    /// once, and a publisher past it waits for fan-out.
    pub(crate) fn new(settings: &HubSettings) -> Self {
        Self {
            counters: ChannelCounters::default(),
            history: Mutex::new(History::new(settings.history_len, settings.history_max_age)),
            fanout: Semaphore::new(settings.outbox_capacity.max(1)),
        }
    }

    /// Accept retains an event and queues it on `commands` for fan-out, unless an event with its
    /// id is still retained. It waits only while as many events wait for fan-out as the semaphore
    /// allows (see [`ChannelState::new`]).
    pub(crate) async fn accept(
        &self,
        hub: &Shared,
        commands: &mpsc::UnboundedSender<Command>,
        id: EventId,
        bytes: Bytes,
    ) -> Result<Delivery, HubError> {
        let permit = self
            .fanout
            .acquire()
            .await
            .map_err(|_| HubError::ShuttingDown)?;
        let mut history = self.history.lock();
        // Close takes this lock too: an event accepted here is queued before Close.
        if self.fanout.is_closed() {
            return Err(HubError::ShuttingDown);
        }
        if history.contains(&id) {
            hub.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Delivery::Duplicate);
        }
        let frame = Arc::new(Frame::new(id, bytes, Instant::now()));
        // Queued under the lock, so the queue holds frames in history order.
        commands
            .send(Command::Publish(Arc::clone(&frame)))
            .map_err(|_| HubError::ShuttingDown)?;
        // The broadcaster gives the permit back once it fanned the frame out.
        permit.forget();
        history.push(frame);
        self.counters
            .retained
            .store(history.len(), Ordering::Relaxed);
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        hub.counters.published.fetch_add(1, Ordering::Relaxed);
        Ok(Delivery::Accepted)
    }

    /// Close refuses later publishes, wakes those waiting for a permit, and queues Close behind
    /// the events already accepted, so those are fanned out first.
    pub(crate) fn close(&self, commands: &mpsc::UnboundedSender<Command>) {
        let _history = self.history.lock();
        self.fanout.close();
        let _ = commands.send(Command::Close);
    }

    /// Snapshot is the retained frames that were fanned out, oldest first.
    fn snapshot(&self) -> Vec<Arc<Frame>> {
        self.history.lock().snapshot()
    }

    /// Evict_expired drops the frames too old at `now`; it returns whether the history is now
    /// empty, and when its oldest frame expires.
    fn evict_expired(&self, now: Instant) -> (bool, Option<Instant>) {
        let mut history = self.history.lock();
        history.evict_expired(now);
        self.counters
            .retained
            .store(history.len(), Ordering::Relaxed);
        (history.is_empty(), history.next_expiry())
    }
}

/// Broadcaster fans one channel's events out and keeps its subscriber list; it runs as its own
/// task until it retires or is closed.
pub(crate) struct Broadcaster {
    name: ChannelName,
    commands: mpsc::UnboundedReceiver<Command>,
    state: Arc<ChannelState>,
    subscribers: IndexMap<u64, Arc<Outbox>>,
    hub: Arc<Shared>,
}

impl Broadcaster {
    pub(crate) fn new(
        name: ChannelName,
        commands: mpsc::UnboundedReceiver<Command>,
        state: Arc<ChannelState>,
        hub: Arc<Shared>,
    ) -> Self {
        Self {
            name,
            commands,
            state,
            subscribers: IndexMap::new(),
            hub,
        }
    }

    /// Run handles commands until the channel is closed, or until it has neither subscribers
    /// nor history and nobody holds a handle to it (then it removes itself from the hub).
    pub(crate) async fn run(mut self) {
        tracing::debug!(channel = %self.name, "channel opened");
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        let mut waiting = Vec::with_capacity(COMMAND_BATCH);
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut expiry: Option<Instant> = None;
        let mut recheck: Option<Instant> = None;
        loop {
            // A publish that retains a frame also queues a command, so `expiry` is recomputed
            // before that frame can be the oldest.
            let deadline = earliest(expiry, recheck);
            if let Some(deadline) = deadline {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
            }
            tokio::select! {
                received = self.commands.recv_many(&mut batch, COMMAND_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    for command in batch.drain(..) {
                        if !self.handle(command, &mut waiting) {
                            self.close_all(CloseReason::Shutdown);
                            return;
                        }
                    }
                    self.fan_out(&mut waiting);
                }
                () = timer.as_mut(), if deadline.is_some() => {
                    recheck = None;
                }
            }
            let (empty, next_expiry) = self.state.evict_expired(Instant::now());
            expiry = next_expiry;
            if self.subscribers.is_empty() && empty {
                if self.hub.retire(&self.name, &self.commands) {
                    tracing::debug!(channel = %self.name, "channel retired");
                    return;
                }
                recheck = Some(Instant::now() + RETIRE_RECHECK);
            }
        }
        self.close_all(CloseReason::Shutdown);
    }

    /// Handle carries out one command; it returns false when the broadcaster must stop. The
    /// frames of consecutive publishes gather in `waiting`, to be fanned out together.
    fn handle(&mut self, command: Command, waiting: &mut Vec<Arc<Frame>>) -> bool {
        if !matches!(command, Command::Publish(_)) {
            // The frames queued before this command reach the subscribers before it takes
            // effect: what a subscriber sees follows the queue's order.
            self.fan_out(waiting);
        }
        match command {
            Command::Publish(frame) => waiting.push(frame),
            Command::Subscribe {
                subscriber,
                outbox,
                with_history,
                reply,
            } => {
                self.subscribers.insert(subscriber, outbox);
                self.counters()
                    .subscribers
                    .store(self.subscribers.len(), Ordering::Relaxed);
                // The frames still waiting for fan-out in the history were queued after this
                // command: they reach the new subscriber live, so its snapshot leaves them out.
                let history = if with_history {
                    self.state.snapshot()
                } else {
                    Vec::new()
                };
                let _ = reply.send(history);
            }
            Command::Unsubscribe { subscriber } => {
                self.subscribers.swap_remove(&subscriber);
                self.counters()
                    .subscribers
                    .store(self.subscribers.len(), Ordering::Relaxed);
            }
            Command::Close => return false,
        }
        true
    }

    /// Fan_out gives the gathered frames their `seq` and hands them to every subscriber, one
    /// push each, dropping those whose outbox overflows or is gone; then it gives the frames'
    /// permits back and clears `waiting`.
    fn fan_out(&mut self, waiting: &mut Vec<Arc<Frame>>) {
        if waiting.is_empty() {
            return;
        }
        // The seq is taken here, as the frames go out, and no other broadcaster on this thread
        // runs until they are in every outbox: a subscriber of several channels receives their
        // frames in seq order, so resuming after an id replays exactly what came after it.
        // Set on the frames the history holds: a snapshot taken after this includes them.
        for frame in waiting.iter() {
            frame.set_seq(self.hub.next_seq());
        }
        let mut lagged = 0u64;
        self.subscribers
            .retain(|_, outbox| match outbox.push_many(waiting) {
                Push::Queued => true,
                Push::Overflowed => {
                    lagged += 1;
                    false
                }
                Push::Closed => false,
            });
        if lagged > 0 {
            self.hub
                .counters
                .slow_disconnects
                .fetch_add(lagged, Ordering::Relaxed);
            tracing::debug!(channel = %self.name, count = lagged, "slow subscribers disconnected");
        }
        self.counters()
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
        self.hub.counters.delivered.fetch_add(
            (self.subscribers.len() * waiting.len()) as u64,
            Ordering::Relaxed,
        );
        self.state.fanout.add_permits(waiting.len());
        waiting.clear();
    }

    fn counters(&self) -> &ChannelCounters {
        &self.state.counters
    }

    fn close_all(&mut self, reason: CloseReason) {
        for (_, outbox) in self.subscribers.drain(..) {
            outbox.close(reason);
        }
        self.counters().subscribers.store(0, Ordering::Relaxed);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
