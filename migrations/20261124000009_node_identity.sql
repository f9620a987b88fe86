-- Who a node is: the SHA-256 of the node token that registered its id (the bootstrap
-- token's, or an issued one's). Another token may not poll or report as that node while
-- this one still works, unless it succeeded it by rotation. Nodes seen before this
-- column existed are bound by their next poll.
ALTER TABLE nodes ADD COLUMN token_digest bytea CHECK (length(token_digest) = 32);
