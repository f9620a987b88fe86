//! One WebSocket connection after its upgrade: reading frames, routing messages to their
//! integrations, pushing what backends send, and closing with the right code.

use super::*;

/// Why a session ended, and the close code the client is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed, or its connection dropped.
    ClientGone,
    Idle,
    Lifetime,
    Shutdown,
    ClosedByBackend(CloseCode, &'static str),
    TooBig,
    ProtocolError,
    InvalidUtf8,
    /// Writes to the client stopped going through.
    SlowReader,
    /// The stage is no longer deployed as a WebSocket API.
    StageGone,
}

impl End {
    fn close_frame(self) -> Option<(CloseCode, &'static str)> {
        match self {
            End::ClientGone | End::SlowReader => None,
            End::Idle => Some((CloseCode::Away, "idle timeout")),
            End::Lifetime => Some((CloseCode::Away, "connection lifetime reached")),
            End::Shutdown => Some((CloseCode::Away, "gateway shutting down")),
            End::StageGone => Some((CloseCode::Away, "stage no longer deployed")),
            End::ClosedByBackend(code, reason) => Some((code, reason)),
            End::TooBig => Some((CloseCode::Size, "message too big")),
            End::ProtocolError => Some((CloseCode::Protocol, "protocol error")),
            End::InvalidUtf8 => Some((CloseCode::Invalid, "text message is not UTF-8")),
        }
    }

    fn label(self) -> &'static str {
        match self {
            End::ClientGone => "client",
            End::Idle => "idle",
            End::Lifetime => "lifetime",
            End::Shutdown => "shutdown",
            End::StageGone => "stage_gone",
            End::ClosedByBackend(..) => "backend",
            End::TooBig => "too_big",
            End::ProtocolError => "protocol_error",
            End::InvalidUtf8 => "invalid_utf8",
            End::SlowReader => "slow_reader",
        }
    }

    fn of_error(e: &WsError) -> End {
        match e {
            WsError::Capacity(CapacityError::MessageTooLong { .. }) => End::TooBig,
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::ClientGone,
            WsError::Capacity(_) | WsError::Protocol(_) | WsError::AttackAttempt => {
                End::ProtocolError
            }
            WsError::Utf8(_) => End::InvalidUtf8,
            _ => End::ClientGone,
        }
    }
}

/// One connection, from the upgrade to `$disconnect`.
pub(super) struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) id: ConnectionId,
    pub(super) connection: Arc<Connection>,
    pub(super) key_headers: Option<HeaderMap>,
    /// Shutdown waits for the session to close and call `$disconnect`.
    pub(super) _token: Option<Token>,
}

type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Session {
    pub(super) async fn run(
        self,
        upgrade: hyper::upgrade::OnUpgrade,
        inbox: mpsc::Receiver<Outbound>,
    ) {
        let limits = self.limits();
        let end = match (upgrade.await, limits) {
            (Ok(upgraded), Some(limits)) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(0)
                    .max_write_buffer_size(limits.max_message_bytes as usize * 2 + 4096)
                    .max_message_size(Some(limits.max_message_bytes as usize))
                    .max_frame_size(Some(limits.max_frame_bytes as usize));
                let mut stream = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                let end = self.serve(&mut stream, inbox, limits).await;
                if let Some((code, reason)) = end.close_frame() {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.close(Some(frame))).await;
                }
                end
            }
            (Ok(_), None) => End::StageGone,
            (Err(_), _) => End::ClientGone,
        };
        self.shared.websockets.connections.remove(&self.id);
        let telemetry = &self.shared.telemetry;
        telemetry.websocket_connections.dec();
        telemetry
            .websocket_closes
            .with_label_values(&[end.label()])
            .inc();
        self.disconnect().await;
    }

    fn limits(&self) -> Option<gatehouse_model::WebSocketLimits> {
        self.with_stage(|_, ws| ws.limits)
    }

    /// Runs `f` on the connection's stage in the snapshot in use.
    fn with_stage<T>(&self, f: impl FnOnce(&CompiledStage, &WsStage) -> T) -> Option<T> {
        let guard = self.shared.config.load();
        let stage = guard.as_ref()?.stage_named(&self.connection.stage)?;
        Some(f(stage, stage.websocket.as_deref()?))
    }

    async fn serve(
        &self,
        stream: &mut Stream,
        mut inbox: mpsc::Receiver<Outbound>,
        limits: gatehouse_model::WebSocketLimits,
    ) -> End {
        let idle = Duration::from_secs(u64::from(limits.idle_timeout_seconds));
        let end_of_life = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(limits.max_connection_seconds));
        let mut idle_until = tokio::time::Instant::now() + idle;
        let timer = tokio::time::sleep_until(idle_until.min(end_of_life));
        tokio::pin!(timer);
        let mut closing = self.shared.websockets.closing.subscribe();
        let mut calls: JoinSet<Option<Message>> = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = crate::server::stopped(&mut closing) => return End::Shutdown,
                outbound = inbox.recv() => match outbound {
                    Some(Outbound::Send(message)) => {
                        if !send(stream, message).await {
                            return End::SlowReader;
                        }
                    }
                    Some(Outbound::Close(code, reason)) => return End::ClosedByBackend(code, reason),
                    None => return End::ClientGone,
                },
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    if let Ok(Some(reply)) = done {
                        if !send(stream, reply).await {
                            return End::SlowReader;
                        }
                    }
                }
                frame = stream.next(), if calls.len() < MAX_CALLS_IN_FLIGHT => {
                    let data = match frame {
                        None => return End::ClientGone,
                        Some(Ok(Message::Close(_))) => {
                            // The protocol layer has queued the answer (the client's code,
                            // or 1002 for a code no endpoint may send): it leaves with this
                            // flush, so the client sees its close handshake completed.
                            // (The sink's close: the stream's own `close` sends a new frame,
                            // which the protocol refuses after the peer's.)
                            let flush = SinkExt::close(stream);
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, flush).await;
                            return End::ClientGone;
                        }
                        Some(Err(e)) => {
                            let end = End::of_error(&e);
                            if end != End::ClientGone {
                                self.record_bad_frame(end);
                            }
                            return end;
                        }
                        Some(Ok(Message::Text(text))) => Some(Bytes::from(text)),
                        Some(Ok(Message::Binary(data))) => Some(data),
                        // Pings (answered by the protocol layer) and pongs: activity only.
                        Some(Ok(_)) => None,
                    };
                    self.connection.touch();
                    idle_until = tokio::time::Instant::now() + idle;
                    timer.as_mut().reset(idle_until.min(end_of_life));
                    let Some(data) = data else { continue };
                    match self.on_message(data, &mut calls) {
                        Ok(Some(reply)) => {
                            if !send(stream, reply).await {
                                return End::SlowReader;
                            }
                        }
                        Ok(None) => {}
                        Err(end) => return end,
                    }
                }
                () = &mut timer => {
                    let now = tokio::time::Instant::now();
                    if now >= end_of_life {
                        return End::Lifetime;
                    }
                    if now >= idle_until {
                        return End::Idle;
                    }
                    timer.as_mut().reset(idle_until.min(end_of_life));
                }
            }
        }
    }
}

impl Session {
    /// Routes one message. Answers at once when the gateway refuses it; otherwise starts
    /// the integration call, whose answer is sent when it comes.
    fn on_message(
        &self,
        data: Bytes,
        calls: &mut JoinSet<Option<Message>>,
    ) -> Result<Option<Message>, End> {
        let start = Instant::now();
        let request_id = self.shared.request_ids.next();
        let guard = self.shared.config.load();
        let Some(config) = guard.as_ref() else {
            return Err(End::StageGone);
        };
        let Some((stage, ws)) = config
            .stage_named(&self.connection.stage)
            .and_then(|stage| Some((stage, stage.websocket.as_deref()?)))
        else {
            return Err(End::StageGone);
        };
        let route = ws.route_for(&data);
        let mut recording = start_recording(&self.shared, stage, route, start);
        if let Some(recording) = recording.as_mut() {
            recording.bytes_in = Some(Arc::new(AtomicU64::new(data.len() as u64)));
        }
        let Some(route) = route else {
            return Ok(Some(self.refuse(recording, Reject::NotFound, &request_id)));
        };
        let call = Call {
            route: Some(route.index),
            key_required: self.key_headers.is_some(),
        };
        let no_headers = HeaderMap::new();
        let headers = self.key_headers.as_ref().unwrap_or(&no_headers);
        let admitted =
            admission::admit_call(config, stage, call, headers, &self.shared, &mut recording);
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => return Ok(Some(self.refuse(recording, refusal.reject(), &request_id))),
        };
        let Some(target) = Target::of(route, None) else {
            return Ok(Some(self.refuse(
                recording,
                Reject::BadGateway,
                &request_id,
            )));
        };
        let event = Event {
            kind: EventType::Message,
            route_key: HeaderValue::from_str(&route.route_key)
                .unwrap_or(HeaderValue::from_static("$default")),
            connection_id: self.connection.id.clone(),
            stage: ws.stage.clone(),
            request_id: request_id.clone(),
            client_ip: self.connection.source_ip.clone(),
            headers: HeaderMap::new(),
            body: data,
        };
        let max = ws.limits.max_message_bytes as usize;
        drop(guard);
        let shared = self.shared.clone();
        let connection_id = self.connection.id.clone();
        calls.spawn(async move {
            let mut recording = recording;
            if let Err(refusal) = admission::take_shared_quota(&shared, admitted).await {
                return Some(refuse_message(
                    recording,
                    refusal.reject(),
                    &connection_id,
                    &request_id,
                ));
            }
            let answer = events::call(&shared.websockets.client, target, event, max).await;
            note_latency(&mut recording, &answer);
            match answer {
                Ok(answer) => {
                    if let Some(recording) = recording.as_mut() {
                        recording.status = answer.status.as_u16();
                        recording.add(answer.body.len() as u64);
                    }
                    (!answer.body.is_empty()).then(|| connections::message_of(answer.body))
                }
                Err(e) => Some(refuse_message(
                    recording,
                    failure(e),
                    &connection_id,
                    &request_id,
                )),
            }
        });
        Ok(None)
    }

    fn refuse(
        &self,
        recording: Option<Recording>,
        reject: Reject,
        request_id: &HeaderValue,
    ) -> Message {
        refuse_message(recording, reject, &self.connection.id, request_id)
    }

    /// Counts a frame the gateway refused (too big, malformed) against the stage.
    fn record_bad_frame(&self, end: End) {
        let status = if end == End::TooBig { 413 } else { 400 };
        let recording = self
            .with_stage(|stage, _| start_recording(&self.shared, stage, None, Instant::now()))
            .flatten();
        if let Some(mut recording) = recording {
            recording.status = status;
        }
    }

    /// Calls `$disconnect`, when the stage has one.
    async fn disconnect(&self) {
        let start = Instant::now();
        let plan = self
            .with_stage(|stage, ws| {
                let route = ws.disconnect.as_ref()?;
                let recording = start_recording(&self.shared, stage, Some(route), start);
                let target = Target::of(route, None)?;
                Some((
                    recording,
                    target,
                    ws.stage.clone(),
                    ws.limits.max_message_bytes as usize,
                ))
            })
            .flatten();
        let Some((mut recording, target, stage, max)) = plan else {
            return;
        };
        let event = Event {
            kind: EventType::Disconnect,
            route_key: HeaderValue::from_static("$disconnect"),
            connection_id: self.connection.id.clone(),
            stage,
            request_id: self.shared.request_ids.next(),
            client_ip: self.connection.source_ip.clone(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        let answer = events::call(&self.shared.websockets.client, target, event, max).await;
        note_latency(&mut recording, &answer);
        if let Some(recording) = recording.as_mut() {
            recording.status = match answer {
                Ok(answer) => answer.status.as_u16(),
                Err(e) => failure(e).status().as_u16(),
            };
        }
    }
}

/// The gateway's own answer to a message, shaped as AWS's, with the status recorded.
fn refuse_message(
    recording: Option<Recording>,
    reject: Reject,
    connection_id: &HeaderValue,
    request_id: &HeaderValue,
) -> Message {
    if let Some(mut recording) = recording {
        recording.status = reject.status().as_u16();
        recording.error = Some(reject.message());
    }
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let message = match reject {
        Reject::BadGateway | Reject::GatewayTimeout => "Internal server error",
        other => other.message(),
    };
    let body = serde_json::json!({
        "message": message,
        "connectionId": text(connection_id),
        "requestId": text(request_id),
    });
    Message::text(body.to_string())
}

/// Sends one message; `false` when the client did not take it in time.
async fn send(stream: &mut Stream, message: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.send(message)).await,
        Ok(Ok(()))
    )
}
