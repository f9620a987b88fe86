//! The process's open-files limit, and the connection limits that fit in it.
//!
//! A connection limit above what the process can open never triggers: once the
//! descriptors run out, `accept` fails and new clients wait in the kernel's queue with no
//! answer, while the held connections stay. So at start the soft limit is raised to the
//! hard one (processes usually start with 1,024), and each connection limit is lowered to
//! what is left after a reserve for everything else (database pool, upstream pool, files,
//! listeners), counting the upstream socket a proxied connection may hold besides its own.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything but client connections: listeners, the database and
/// upstream pools' idle connections, the disk cache, the access log, the runtime's own.
pub const RESERVE: u64 = 128;
/// Descriptors a proxied client connection may hold: its own and an upstream socket.
pub const PER_PROXY_CONNECTION: u64 = 2;
/// Descriptors a control-plane connection holds.
pub const PER_CONTROL_PLANE_CONNECTION: u64 = 1;

/// Raises the soft open-files limit to the hard limit; returns the soft limit then in
/// force, or `None` when unlimited.
pub fn raise_limit() -> Option<u64> {
    let limits = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (limits.current, limits.maximum) else {
        return None;
    };
    let Some(maximum) = maximum.filter(|maximum| *maximum > current) else {
        return Some(current);
    };
    let raised = Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(maximum),
        Err(e) => {
            tracing::warn!(error = %e, current, maximum, "could not raise the open-files limit");
            Some(current)
        }
    }
}

/// The connection limit that fits in `files` descriptors (the reserve already taken off)
/// when each connection holds `per_connection`: `configured`, or less. Never below 1.
pub fn cap(configured: usize, files: u64, per_connection: u64) -> usize {
    let fits = files / per_connection.max(1);
    configured
        .min(usize::try_from(fits).unwrap_or(usize::MAX))
        .max(1)
}

/// The descriptors left for connections under a soft limit of `limit`.
pub fn for_connections(limit: u64) -> u64 {
    limit.saturating_sub(RESERVE)
}

/// Lowers `configured` (the limit of `what`) to what `files` descriptors hold, saying so
/// in the log when it does.
pub fn fit(what: &str, configured: usize, files: Option<u64>, per_connection: u64) -> usize {
    let Some(files) = files else {
        return configured;
    };
    let capped = cap(configured, files, per_connection);
    if capped < configured {
        tracing::warn!(
            configured,
            capped,
            files,
            "{what}: connection limit lowered to what the open-files limit allows (raise `ulimit -n` for more)"
        );
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_lowered_to_what_the_descriptors_hold() {
        assert_eq!(cap(100_000, for_connections(1024), 2), 448);
        assert_eq!(cap(100_000, for_connections(256), 2), 64);
        assert_eq!(cap(10_000, for_connections(1024), 1), 896);
        // Room enough: the configured limit stands.
        assert_eq!(cap(100, for_connections(1_048_576), 2), 100);
        // Fewer descriptors than the reserve: one connection, not zero.
        assert_eq!(cap(100, for_connections(64), 2), 1);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let raised = raise_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(raised, after.current);
        assert_eq!(after.current, after.maximum);
    }
}
