//! A signed-in dashboard client for handler tests: it signs in through the real sign-in
//! form, keeps the session cookie, and posts forms with the session's CSRF token, over a
//! real socket, following no redirects so tests see each answer.

use gatehouse_control_plane::dashboard::accounts;
use gatehouse_control_plane::repo::users::Role;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::ControlPlane;

/// The password of every user these tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// One answer of the dashboard.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub html: String,
    /// Where a redirect points.
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// Panics with the page when it does not contain `text`.
    #[track_caller]
    pub fn expect_text(&self, text: &str) -> &Page {
        assert!(
            self.html.contains(text),
            "expected {text:?} in the page ({}):\n{}",
            self.status,
            self.html
        );
        self
    }
}

/// A browser-like client of one control plane's dashboard.
pub struct Dashboard {
    base: String,
    http: reqwest::Client,
    /// `name=value` of the session cookie, once signed in.
    session: Option<String>,
    /// This session's CSRF token, read from a page's forms.
    pub csrf: String,
}

/// Asserts that `message` is shown as the error of the input `field`: after it, before
/// the input `next` (the form's next field).
#[track_caller]
pub fn error_next_to(page: &Page, field: &str, next: &str, message: &str) {
    let html = &page.html;
    let at = html
        .find(&format!("name=\"{field}\""))
        .unwrap_or_else(|| panic!("no field {field}:\n{html}"));
    let until = html[at..]
        .find(&format!("name=\"{next}\""))
        .map_or(html.len(), |i| at + i);
    let section = &html[at..until];
    assert!(
        section.contains("field-error") && section.contains(message),
        "expected {message:?} next to {field}, got:\n{section}"
    );
}

/// An HTTP client that follows no redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// The value of the first `name="<field>" value="..."` in `html`.
pub fn input_value(html: &str, field: &str) -> Option<String> {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// `name=value` of cookie `name` among a response's `Set-Cookie` headers.
pub fn set_cookie(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

impl Dashboard {
    /// A client that is not signed in.
    pub fn anonymous(cp: &ControlPlane) -> Dashboard {
        Dashboard {
            base: cp.url(),
            http: http(),
            session: None,
            csrf: String::new(),
        }
    }

    /// Creates user `name` with `role` and signs in as them.
    pub async fn sign_in_new(cp: &ControlPlane, name: &str, role: Role) -> Dashboard {
        accounts::create(&cp.pool, name, PASSWORD, role, false)
            .await
            .expect("create user");
        let mut dashboard = Dashboard::anonymous(cp);
        let answer = dashboard.sign_in(name, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
        dashboard
    }

    /// Signs in through the form; on success the client keeps the session.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/signin").await;
        let form_cookie = set_cookie(&form.headers, "gatehouse_form").expect("form cookie");
        let csrf = input_value(&form.html, "csrf").expect("csrf field");
        let answer = self
            .send(
                self.http
                    .post(format!("{}/signin", self.base))
                    .header(COOKIE, &form_cookie)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("name", name),
                        ("password", password),
                        ("next", "/"),
                    ]),
            )
            .await;
        if let Some(session) = set_cookie(&answer.headers, "gatehouse_session") {
            self.session = Some(session);
            let home = self.get("/").await;
            self.csrf = input_value(&home.html, "csrf").expect("csrf on the overview");
        }
        answer
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.session {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.expect("dashboard answers");
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let html = response.text().await.expect("body");
        Page {
            status,
            html,
            location,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Posts a form with this session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields`: no CSRF token unless among them.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.http.post(format!("{}{path}", self.base)).form(fields))
            .await
    }
}
