-- WebSocket APIs: how a message picks its route (frozen into each deployment: as in AWS,
-- a change takes a redeploy) and the limits of each stage's connections (AWS's defaults).

ALTER TABLE apis ADD COLUMN route_selection_expression text;
ALTER TABLE apis ADD CONSTRAINT apis_route_selection_check
    CHECK ((protocol = 'WEBSOCKET') = (route_selection_expression IS NOT NULL));

ALTER TABLE deployments ADD COLUMN route_selection_expression text;

ALTER TABLE stages
    ADD COLUMN ws_max_message_bytes integer NOT NULL DEFAULT 131072,
    ADD COLUMN ws_max_frame_bytes integer NOT NULL DEFAULT 32768,
    ADD COLUMN ws_idle_timeout_seconds integer NOT NULL DEFAULT 600,
    ADD COLUMN ws_max_connection_seconds integer NOT NULL DEFAULT 7200;
