//! The admin API: its answers to bad input, its OpenAPI document, and the tokens it
//! issues.

mod bad_input;
mod openapi;
mod tokens;
