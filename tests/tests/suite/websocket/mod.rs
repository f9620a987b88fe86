//! WebSocket APIs: managed through the admin API and the dashboard, and served by the
//! proxy to real WebSocket clients.

mod admin;
mod proxy;
