//! The supervisor: connect, declare, consume; on any loss, back off and start again, forever.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, FuturesUnordered, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::time::Instant;

use super::delivery::to_event;
use super::topology::{self, Binding};
use super::{mask_url, AmqpPublisher, AmqpSettings, AmqpStatus};
use crate::channel::ChannelName;
use crate::hub::{Hub, HubError};

/// A session that stayed up this long resets the backoff to its minimum.
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// How a session ended without an error.
enum Ended {
    /// Shutdown was asked for.
    Stopped,
    /// The broker cancelled the consumers (for example, a queue was deleted).
    Cancelled,
}

pub(super) struct Supervisor {
    pub(super) settings: AmqpSettings,
    pub(super) hub: Hub,
    pub(super) status: Arc<AmqpStatus>,
    pub(super) publisher: AmqpPublisher,
    pub(super) stop: watch::Receiver<bool>,
    /// Whether a session has consumed before: the next one that does is a reconnect.
    pub(super) consumed_before: bool,
}

impl Supervisor {
    /// Run keeps a session up until shutdown, reconnecting with exponential backoff.
    pub(super) async fn run(mut self) {
        let url = mask_url(self.settings.url.expose());
        let mut delay = self.settings.reconnect_min;
        let mut attempts: u64 = 0;
        loop {
            let started = Instant::now();
            let outcome = self.session().await;
            self.publisher.set_channel(None);
            self.status.consuming.store(false, Ordering::SeqCst);
            match outcome {
                Ok(Ended::Stopped) => {
                    tracing::info!("AMQP consumer stopped");
                    return;
                }
                Ok(Ended::Cancelled) => {
                    tracing::warn!(url, "the broker cancelled our consumers; reconnecting")
                }
                Err(error) if attempts == 0 => {
                    tracing::warn!(url, %error, "cannot reach RabbitMQ; retrying")
                }
                Err(error) => {
                    tracing::warn!(url, %error, ?delay, "RabbitMQ connection lost or refused; retrying")
                }
            }
            if started.elapsed() >= STABLE_SESSION {
                delay = self.settings.reconnect_min;
            }
            attempts += 1;
            let jitter = Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64 / 4));
            tokio::select! {
                () = tokio::time::sleep(delay + jitter) => {}
                _ = self.stop.changed() => return,
            }
            if *self.stop.borrow() {
                return;
            }
            delay = (delay * 2).min(self.settings.reconnect_max);
        }
    }

    /// Session connects, declares the topology and consumes until the connection fails, the
    /// consumers are cancelled, or shutdown is asked for.
    async fn session(&mut self) -> Result<Ended, lapin::Error> {
        let settings = &self.settings;
        let name = format!("sse-gateway {}", settings.instance_id);
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = Connection::connect(settings.url.expose(), properties).await?;
        let bindings = topology::bindings(&settings.instance_id, &settings.channels);
        let control = connection.create_channel().await?;
        topology::declare(
            &control,
            &settings.exchange,
            settings.exchange_passive,
            settings.queue_expires,
            &bindings,
        )
        .await?;
        control
            .confirm_select(ConfirmSelectOptions::default())
            .await?;

        let consuming = connection.create_channel().await?;
        consuming
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumers = Vec::with_capacity(bindings.len());
        let mut tags = Vec::with_capacity(bindings.len());
        for Binding { queue, channel, .. } in &bindings {
            let tag = format!("{queue}.{}", fastrand::u32(..));
            let consumer = consuming
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let channel = channel.clone();
            consumers.push(consumer.map(move |delivery| (channel.clone(), delivery)));
            tags.push(tag);
        }
        let mut deliveries = stream::select_all(consumers);

        self.publisher.set_channel(Some(control));
        self.status.consuming.store(true, Ordering::SeqCst);
        if std::mem::replace(&mut self.consumed_before, true) {
            self.status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(
            exchange = settings.exchange,
            queues = ?bindings.iter().map(|b| &b.queue).collect::<Vec<_>>(),
            prefetch = settings.prefetch,
            "consuming from RabbitMQ"
        );

        // Acks and nacks in flight: each is a round trip through lapin's connection task, so the
        // next delivery is taken without waiting for the last one's to complete. At most as many
        // as the prefetch lets the broker have unacknowledged.
        let mut settling = FuturesUnordered::new();
        let most_settling = usize::from(settings.prefetch.max(1));
        loop {
            tokio::select! {
                next = deliveries.next(), if settling.len() < most_settling => match next {
                    Some((channel, Ok(mut delivery))) => {
                        let verdict = self.handle(channel.as_ref(), &mut delivery).await;
                        settling.push(verdict.send(delivery));
                    }
                    Some((_, Err(error))) => return Err(error),
                    None => return Ok(Ended::Cancelled),
                },
                Some(settled) = settling.next() => {
                    settled?;
                }
                _ = self.stop.changed() => {
                    // The deliveries already handled are acknowledged before the channel closes;
                    // one that cannot be is redelivered by the broker, so shutdown goes on.
                    while let Some(settled) = settling.next().await {
                        if let Err(error) = settled {
                            tracing::warn!(%error, "an ack could not be sent at shutdown; the broker will redeliver");
                        }
                    }
                    // Before cancelling and closing (not after, as `run` does for a lost
                    // session): an HTTP publish must not be sent on a channel being closed.
                    self.publisher.set_channel(None);
                    self.status.consuming.store(false, Ordering::SeqCst);
                    for tag in tags {
                        let _ = consuming.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    }
                    let _ = connection.close(200, "sse-gateway shutting down".into()).await;
                    return Ok(Ended::Stopped);
                }
            }
        }
    }

    /// Handle turns a delivery into an event and publishes it; it returns how to answer the
    /// delivery: an ack once the event is retained in its channel's history (fan-out to
    /// subscribers follows), or a nack.
    async fn handle(&self, channel: Option<&ChannelName>, delivery: &mut Delivery) -> Verdict {
        let properties = &delivery.properties;
        let decoded = to_event(
            channel,
            delivery.routing_key.as_str(),
            properties.message_id().as_ref().map(|s| s.as_str()),
            properties.kind().as_ref().map(|s| s.as_str()),
            std::mem::take(&mut delivery.data),
            self.settings.max_event_size,
        );
        let event = match decoded {
            Ok(event) => event,
            Err(rejection) => return self.reject(channel, delivery, &rejection),
        };
        match self.hub.publish(event).await {
            Ok(_) => {
                self.status.consumed.fetch_add(1, Ordering::Relaxed);
                Verdict::Ack
            }
            Err(HubError::ShuttingDown) => Verdict::Requeue,
            Err(error) => self.reject(channel, delivery, &error),
        }
    }

    /// Reject counts and logs an unusable delivery, to be dropped (it would fail again).
    fn reject(
        &self,
        channel: Option<&ChannelName>,
        delivery: &Delivery,
        reason: &dyn std::fmt::Display,
    ) -> Verdict {
        self.status.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            channel = channel.map(ChannelName::as_str),
            routing_key = delivery.routing_key.as_str(),
            %reason,
            "AMQP delivery rejected"
        );
        Verdict::Drop
    }
}

/// Verdict is how a handled delivery is answered.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    /// Acknowledge: the event is retained.
    Ack,
    /// Nack without requeue: the delivery is unusable and would fail again.
    Drop,
    /// Nack with requeue: the delivery is fine but cannot be handled now.
    Requeue,
}

impl Verdict {
    /// Send answers the delivery; it is sent when the future is first polled.
    async fn send(self, delivery: Delivery) -> Result<bool, lapin::Error> {
        let nack = |requeue| BasicNackOptions {
            requeue,
            multiple: false,
        };
        match self {
            Verdict::Ack => delivery.ack(BasicAckOptions::default()).await,
            Verdict::Drop => delivery.nack(nack(false)).await,
            Verdict::Requeue => delivery.nack(nack(true)).await,
        }
    }
}
