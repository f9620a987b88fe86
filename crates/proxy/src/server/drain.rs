//! Knowing when everything a shutdown waits for is done: client connections, requests in
//! flight and WebSocket sessions each hold a [`Token`]; [`Drain::wait`] returns once the
//! last one is dropped.

use std::sync::Mutex;

use tokio::sync::mpsc;

/// Held for as long as some work must finish before the proxy stops.
#[derive(Clone)]
pub struct Token(#[allow(dead_code)] mpsc::Sender<()>);

pub struct Drain {
    /// `None` once waiting began: late work gets no token and is not waited for.
    sender: Mutex<Option<mpsc::Sender<()>>>,
    receiver: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl Default for Drain {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(1);
        Drain {
            sender: Mutex::new(Some(sender)),
            receiver: tokio::sync::Mutex::new(receiver),
        }
    }
}

impl Drain {
    pub fn token(&self) -> Option<Token> {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        sender.as_ref().map(|s| Token(s.clone()))
    }

    /// Returns when every token handed out is dropped.
    pub async fn wait(&self) {
        drop(self.sender.lock().unwrap_or_else(|e| e.into_inner()).take());
        // Nothing is ever sent: `recv` returns `None` when the last sender is gone.
        let _ = self.receiver.lock().await.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_every_token_and_hands_out_none_after() {
        let drain = std::sync::Arc::new(Drain::default());
        let token = drain.token().expect("token");
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        assert!(drain.token().is_none());
        drop(token);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("done")
            .expect("joined");
    }
}
