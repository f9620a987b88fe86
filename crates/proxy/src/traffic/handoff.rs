//! A handoff from request workers to one background reader: sending never blocks, at most
//! `capacity` items wait (more are dropped and counted), and memory follows what waits,
//! not the capacity (a preallocated ring of 65,536 access log lines alone is 21 MiB).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

pub struct Handoff<T> {
    sender: Sender<T>,
    reader: Mutex<Option<Reader<T>>>,
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    /// Items refused because `capacity` were waiting, or the reader was gone.
    pub dropped: AtomicU64,
}

/// The reading end.
pub struct Reader<T> {
    receiver: Receiver<T>,
    waiting: Arc<AtomicUsize>,
}

impl<T> Handoff<T> {
    pub fn new(capacity: usize) -> Handoff<T> {
        let (sender, receiver) = channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        Handoff {
            sender,
            reader: Mutex::new(Some(Reader {
                receiver,
                waiting: waiting.clone(),
            })),
            waiting,
            capacity,
            dropped: AtomicU64::new(0),
        }
    }

    /// Hands `item` over, or drops it when `capacity` items wait already.
    pub fn send(&self, item: T) {
        if self.waiting.fetch_add(1, Relaxed) >= self.capacity || self.sender.send(item).is_err() {
            self.waiting.fetch_sub(1, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// The reading end, for the one reader; `None` once taken.
    pub fn take_reader(&self) -> Option<Reader<T>> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl<T> Reader<T> {
    /// The next waiting item, if any.
    pub fn try_next(&self) -> Option<T> {
        match self.receiver.try_recv() {
            Ok(item) => {
                self.waiting.fetch_sub(1, Relaxed);
                Some(item)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_handoff_drops_instead_of_waiting_and_frees_room_as_it_is_read() {
        let handoff = Handoff::new(3);
        for i in 0..5 {
            handoff.send(i);
        }
        assert_eq!(handoff.dropped.load(Relaxed), 2);
        let reader = handoff.take_reader().expect("reader");
        assert!(handoff.take_reader().is_none());
        assert_eq!(reader.try_next(), Some(0));
        handoff.send(5);
        let rest: Vec<_> = std::iter::from_fn(|| reader.try_next()).collect();
        assert_eq!(rest, [1, 2, 5]);
        assert_eq!(handoff.dropped.load(Relaxed), 2);
    }
}
