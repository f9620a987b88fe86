//! The compiled route table of one stage: a request's method and path find their route
//! with one lookup in a prefix tree, never by scanning the route list.
//!
//! Precedence follows AWS HTTP APIs: the most specific path wins (literal segments over
//! `{param}`, `{param}` over a greedy `{proxy+}`), a route naming the method wins over an
//! `ANY` route of the same path, and `$default` takes whatever nothing else matched.
//!
//! Each method has two trees: one of routes without a greedy segment, tried first, and one
//! of greedy routes, so `GET /pets/{id}/toys` and `GET /pets/{proxy+}` can live together.

use std::collections::HashMap;

use crate::route_key::{Method, RouteKey};

/// Why a set of routes cannot be compiled together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("route `{route_key}` matches the same requests as `{existing}`")]
    Duplicate { route_key: String, existing: String },
    #[error("route `{route_key}` conflicts with another route: {reason}")]
    Conflict { route_key: String, reason: String },
    #[error("route `{route_key}` is a WebSocket route key; an HTTP API cannot serve it")]
    NotHttp { route_key: String },
}

impl CompileError {
    /// The route key that could not be added.
    pub fn route_key(&self) -> &str {
        match self {
            CompileError::Duplicate { route_key, .. }
            | CompileError::Conflict { route_key, .. }
            | CompileError::NotHttp { route_key } => route_key,
        }
    }
}

/// One slot per method a route key can name, in the order of `Method::ALL`; slot 0 serves
/// methods no key can name (only `ANY` routes reach them).
const SLOTS: usize = Method::ALL.len();

fn slot_of_request_method(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::PATCH => 4,
        http::Method::DELETE => 5,
        http::Method::HEAD => 6,
        http::Method::OPTIONS => 7,
        _ => 0,
    }
}

/// A stage's routes, compiled for lookup. `T` is what a match yields (the proxy keeps its
/// compiled integration there).
#[derive(Debug)]
pub struct RouteTable<T> {
    routes: Vec<T>,
    exact: Vec<matchit::Router<usize>>,
    greedy: Vec<matchit::Router<usize>>,
    default: Option<usize>,
}

/// A matched route and the values of its path parameters, in route-key order.
#[derive(Debug)]
pub struct RouteMatch<'t, 'p, T> {
    pub value: &'t T,
    params: Option<matchit::Params<'t, 'p>>,
}

impl<'t, 'p, T> RouteMatch<'t, 'p, T> {
    /// The value of the route's `index`-th path parameter ("" if there is none).
    pub fn param(&self, index: usize) -> &'p str {
        self.params
            .as_ref()
            .and_then(|p| p.iter().nth(index))
            .map_or("", |(_, v)| v)
    }

    /// All path parameter values, in route-key order.
    pub fn param_values(&self) -> impl Iterator<Item = &'p str> + '_ {
        self.params.iter().flat_map(|p| p.iter().map(|(_, v)| v))
    }
}

impl<T> RouteTable<T> {
    pub fn compile(routes: impl IntoIterator<Item = (RouteKey, T)>) -> Result<Self, CompileError> {
        let mut values = Vec::new();
        let mut keyed: Vec<(Method, String, String, usize)> = Vec::new();
        let mut seen: HashMap<(Method, String), String> = HashMap::new();
        let mut default = None;
        for (key, value) in routes {
            let index = values.len();
            values.push(value);
            match &key {
                RouteKey::Default => {
                    if default.replace(index).is_some() {
                        return Err(CompileError::Duplicate {
                            route_key: key.to_string(),
                            existing: key.to_string(),
                        });
                    }
                }
                RouteKey::Route { method, path } => {
                    let shape = path.shape();
                    if let Some(existing) = seen.insert((*method, shape.clone()), key.to_string()) {
                        return Err(CompileError::Duplicate {
                            route_key: key.to_string(),
                            existing,
                        });
                    }
                    keyed.push((*method, shape, key.to_string(), index));
                }
                RouteKey::Connect | RouteKey::Disconnect | RouteKey::Message(_) => {
                    return Err(CompileError::NotHttp {
                        route_key: key.to_string(),
                    });
                }
            }
        }
        let mut exact: Vec<matchit::Router<usize>> =
            (0..SLOTS).map(|_| matchit::Router::new()).collect();
        let mut greedy: Vec<matchit::Router<usize>> =
            (0..SLOTS).map(|_| matchit::Router::new()).collect();
        let named = |method: Method, shape: &str| {
            keyed
                .iter()
                .any(|(m, s, ..)| *m == method && s.as_str() == shape)
        };
        for slot in 0..SLOTS {
            // What serves a request of this slot's method on one path, best first: a route
            // naming the method; for HEAD, a GET route (a HEAD is a GET without the body,
            // and must not fall through to a route that needs no key); then ANY.
            let own = Method::ALL[slot];
            let serves = |(m, shape, ..): &&(Method, String, String, usize)| match *m {
                _ if slot == 0 => *m == Method::Any,
                m if m == own => true,
                Method::Get => own == Method::Head && !named(Method::Head, shape),
                Method::Any => {
                    let taken =
                        named(own, shape) || own == Method::Head && named(Method::Get, shape);
                    !taken
                }
                _ => false,
            };
            for (_, shape, route_key, index) in keyed.iter().filter(serves) {
                let router = if shape.contains("{*") {
                    &mut greedy[slot]
                } else {
                    &mut exact[slot]
                };
                router
                    .insert(shape.as_str(), *index)
                    .map_err(|e| CompileError::Conflict {
                        route_key: route_key.clone(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(RouteTable {
            routes: values,
            exact,
            greedy,
            default,
        })
    }

    /// The route for a request, or `None` when no route and no `$default` matches.
    pub fn at<'t, 'p>(
        &'t self,
        method: &http::Method,
        path: &'p str,
    ) -> Option<RouteMatch<'t, 'p, T>> {
        let slot = slot_of_request_method(method);
        for router in [&self.exact[slot], &self.greedy[slot]] {
            if let Ok(found) = router.at(path) {
                // A `{param}` is one segment, never an empty one: matchit 0.8.4 takes
                // `/a//b` for `/a/{x}/b`, with `x` empty.
                if found.params.iter().any(|(_, value)| value.is_empty()) {
                    continue;
                }
                return Some(RouteMatch {
                    value: &self.routes[*found.value],
                    params: Some(found.params),
                });
            }
        }
        self.default.map(|i| RouteMatch {
            value: &self.routes[i],
            params: None,
        })
    }

    /// Every route's value, in the order the routes were given.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&str]) -> RouteTable<&'static str> {
        let keys: Vec<(RouteKey, &'static str)> = keys
            .iter()
            .map(|k| {
                (
                    RouteKey::parse(k).expect("valid key"),
                    Box::leak(k.to_string().into_boxed_str()) as &'static str,
                )
            })
            .collect();
        RouteTable::compile(keys).expect("compiles")
    }

    fn hit(t: &RouteTable<&'static str>, method: &str, path: &str) -> Option<&'static str> {
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        t.at(&method, path).map(|m| *m.value)
    }

    #[test]
    fn literal_beats_parameter_beats_greedy_beats_default() {
        let t = table(&[
            "GET /pets/dog",
            "GET /pets/{id}",
            "ANY /{proxy+}",
            "$default",
        ]);
        assert_eq!(hit(&t, "GET", "/pets/dog"), Some("GET /pets/dog"));
        assert_eq!(hit(&t, "GET", "/pets/7"), Some("GET /pets/{id}"));
        assert_eq!(hit(&t, "GET", "/pets/7/toys"), Some("ANY /{proxy+}"));
        assert_eq!(hit(&t, "POST", "/pets/7"), Some("ANY /{proxy+}"));
        assert_eq!(hit(&t, "GET", "/"), Some("$default"));
    }

    #[test]
    fn named_method_beats_any_on_the_same_path() {
        let t = table(&["ANY /pets", "POST /pets"]);
        assert_eq!(hit(&t, "POST", "/pets"), Some("POST /pets"));
        assert_eq!(hit(&t, "GET", "/pets"), Some("ANY /pets"));
        assert_eq!(hit(&t, "PROPFIND", "/pets"), Some("ANY /pets"));
    }

    #[test]
    fn head_is_served_by_the_get_route_of_its_path() {
        let t = table(&["GET /orders", "ANY /{proxy+}"]);
        assert_eq!(hit(&t, "HEAD", "/orders"), Some("GET /orders"));
        assert_eq!(hit(&t, "HEAD", "/other"), Some("ANY /{proxy+}"));
        let t = table(&["GET /orders", "HEAD /orders", "ANY /orders"]);
        assert_eq!(hit(&t, "HEAD", "/orders"), Some("HEAD /orders"));
        assert_eq!(hit(&t, "PUT", "/orders"), Some("ANY /orders"));
        let t = table(&["GET /orders/{id}", "ANY /orders/{id}"]);
        assert_eq!(hit(&t, "HEAD", "/orders/1"), Some("GET /orders/{id}"));
        let t = table(&["GET /orders/mine", "HEAD /orders/{id}"]);
        assert_eq!(hit(&t, "HEAD", "/orders/mine"), Some("GET /orders/mine"));
    }

    #[test]
    fn a_method_no_route_key_can_name_reaches_only_any_routes() {
        let t = table(&["GET /orders", "ANY /{proxy+}"]);
        assert_eq!(hit(&t, "PROPFIND", "/orders"), Some("ANY /{proxy+}"));
        let t = table(&["GET /orders"]);
        assert_eq!(hit(&t, "PROPFIND", "/orders"), None);
    }

    #[test]
    fn falls_back_to_a_greedy_route_when_a_longer_parameter_route_does_not_fit() {
        let t = table(&["GET /pets/{id}/toys", "GET /pets/{proxy+}"]);
        assert_eq!(hit(&t, "GET", "/pets/1/toys"), Some("GET /pets/{id}/toys"));
        assert_eq!(hit(&t, "GET", "/pets/1/food"), Some("GET /pets/{proxy+}"));
    }

    #[test]
    fn backtracks_from_a_literal_to_a_parameter() {
        let t = table(&["GET /pets/dog/x", "GET /pets/{id}/y"]);
        assert_eq!(hit(&t, "GET", "/pets/dog/y"), Some("GET /pets/{id}/y"));
    }

    #[test]
    fn nested_greedy_routes_prefer_the_longer_prefix() {
        let t = table(&["ANY /{proxy+}", "ANY /pets/{rest+}"]);
        assert_eq!(hit(&t, "GET", "/pets/1/2"), Some("ANY /pets/{rest+}"));
        assert_eq!(hit(&t, "GET", "/cats/1"), Some("ANY /{proxy+}"));
    }

    #[test]
    fn parameters_come_back_in_route_key_order() {
        let t = table(&["GET /users/{user}/pets/{pet}"]);
        let m = t
            .at(&http::Method::GET, "/users/ann/pets/rex")
            .expect("matches");
        let values: Vec<&str> = m.param_values().collect();
        assert_eq!(m.param(1), "rex");
        assert_eq!(values, vec!["ann", "rex"]);
    }

    #[test]
    fn an_empty_segment_is_no_parameter() {
        let t = table(&["GET /users/{user}/pets/{pet}", "$default"]);
        assert_eq!(hit(&t, "GET", "/users//pets/rex"), Some("$default"));
        let t = table(&["GET /pets/{id}/toys", "GET /pets/{proxy+}"]);
        assert_eq!(hit(&t, "GET", "/pets//toys"), Some("GET /pets/{proxy+}"));
        let m = t.at(&http::Method::GET, "/pets//toys").expect("matches");
        assert_eq!(m.param(0), "/toys");
    }

    #[test]
    fn without_default_an_unmatched_request_finds_nothing() {
        let t = table(&["GET /pets"]);
        assert_eq!(hit(&t, "GET", "/cats"), None);
        assert_eq!(hit(&t, "DELETE", "/pets"), None);
    }

    #[test]
    fn refuses_two_routes_that_match_the_same_requests() {
        let keys = ["GET /pets/{id}", "GET /pets/{name}"]
            .map(|k| (RouteKey::parse(k).expect("valid"), ()));
        let e = RouteTable::compile(keys).expect_err("duplicate");
        assert_eq!(e.route_key(), "GET /pets/{name}");
        let keys = ["$default", "$default"].map(|k| (RouteKey::parse(k).expect("valid"), ()));
        assert!(RouteTable::compile(keys).is_err());
    }

    #[test]
    fn parameter_names_do_not_conflict_across_routes() {
        let t = table(&["GET /{a}/x", "GET /{b}/y", "GET /{c}"]);
        assert_eq!(hit(&t, "GET", "/1/y"), Some("GET /{b}/y"));
        assert_eq!(hit(&t, "GET", "/1"), Some("GET /{c}"));
    }

    #[test]
    fn the_most_parameters_a_key_may_hold_compile() {
        let path: String = (0..crate::route_key::MAX_PARAMS)
            .map(|i| format!("/{{p{i}}}"))
            .collect();
        let key = format!("GET {path}");
        let t = table(&[key.as_str()]);
        let request: String = (0..crate::route_key::MAX_PARAMS)
            .map(|i| format!("/{i}"))
            .collect();
        assert!(hit(&t, "GET", &request).is_some());
    }
}
