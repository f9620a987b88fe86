//! Keeping the proxy's snapshot current: the control-plane client, the long-polling
//! poller that compiles and publishes what it receives, and the disk cache a restarted
//! proxy serves from while the control plane is away.

pub mod cache;
pub mod control_plane;
pub mod poller;
