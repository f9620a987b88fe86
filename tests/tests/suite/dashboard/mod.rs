//! The dashboard, over HTTP with a browser-like client page by page, and once in a real
//! browser from a fresh install to traffic on its charts.

mod apis;
mod browser;
mod front_door;
mod keys;
mod stages;
