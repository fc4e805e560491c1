//! Worker slots and the bounded queue in front of them.
//!
//! A request either takes a free worker at once, or waits in a FIFO queue of at most MAX_QUEUE
//! places, or is refused. A waiting request whose handler is dropped (its client disconnected)
//! leaves the queue at once: the semaphore forgets the waiter, and the guard here fixes the
//! gauges and counts it as abandoned.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// Worker slots plus the queue bound.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
    metrics: Arc<Metrics>,
}

/// The request may not wait: the queue is full.
#[derive(Debug)]
pub struct QueueFull;

/// A request that is admitted: it holds a worker, or a place in the queue.
pub enum Entry {
    /// A worker was free.
    Running(Slot),
    /// Every worker is busy; `position` requests were already waiting.
    Waiting(Waiting),
}

/// A held worker. Dropping it frees the worker for the next waiting request.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

/// A held queue place. Dropping it before [`Waiting::wait`] finishes gives the place up and counts
/// the request as abandoned.
#[derive(Debug)]
pub struct Waiting {
    admission: Arc<Admission>,
    /// Requests ahead of this one in the queue when it arrived.
    pub position: usize,
    done: bool,
}

impl Admission {
    /// `workers` slots and room for `max_queue` waiting requests.
    pub fn new(workers: u32, max_queue: u32, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(workers as usize)),
            waiting: AtomicUsize::new(0),
            max_queue: max_queue as usize,
            metrics,
        })
    }

    /// Takes a free worker, else a queue place, else refuses.
    pub fn enter(self: &Arc<Self>) -> Result<Entry, QueueFull> {
        // The semaphore hands released permits straight to queued waiters, so a newcomer cannot
        // overtake the queue here.
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Entry::Running(Slot::new(permit, self.metrics.clone())));
        }
        let position = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_queue).then_some(n + 1)
            })
            .map_err(|_| QueueFull)?;
        self.metrics.queue_depth.inc();
        Ok(Entry::Waiting(Waiting {
            admission: self.clone(),
            position,
            done: false,
        }))
    }

    /// Requests in inference and waiting now.
    pub fn occupancy(&self) -> (i64, i64) {
        (self.metrics.in_flight.get(), self.metrics.queue_depth.get())
    }
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

impl Waiting {
    /// Waits for a worker, first come first served. `None` only if the slots were closed, which
    /// this server never does.
    pub async fn wait(mut self) -> Option<Slot> {
        let permit = self.admission.slots.clone().acquire_owned().await.ok()?;
        self.leave_queue();
        self.done = true;
        Some(Slot::new(permit, self.admission.metrics.clone()))
    }

    fn leave_queue(&self) {
        self.admission.waiting.fetch_sub(1, Ordering::AcqRel);
        self.admission.metrics.queue_depth.dec();
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.done {
            self.leave_queue();
            self.admission.metrics.abandoned.inc();
            tracing::debug!(
                position = self.position,
                "queued request abandoned by its client"
            );
        }
    }
}
