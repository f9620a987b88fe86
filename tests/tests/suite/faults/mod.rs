//! The fault suite (`just chaos` runs it at full length): processes killed and restarted
//! under traffic, PostgreSQL and Redis taken away, upstreams breaking mid-body, and
//! clients that send too much, too slowly or too oddly.

mod chaos;
mod dependencies;
mod hostile_input;
