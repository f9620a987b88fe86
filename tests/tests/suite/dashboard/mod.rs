//! The dashboard, over HTTP with a browser-like client page by page, and in a real browser:
//! once from a fresh install to traffic on its charts, and securing an API.

mod apis;
mod authorizers;
mod browser;
mod front_door;
mod keys;
mod stages;
