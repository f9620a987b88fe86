"""Pushes a message to a WebSocket connection with AWS's own client (botocore), as a
backend on AWS would: `post_to_connection` on the `apigatewaymanagementapi`, signed with
SigV4, with the proxy's management token as the secret access key.

Usage: post_to_connection.py <stage invoke URL> <connection id> <token> <message>
Prints the connection's identity (`get_connection`) as JSON.
"""

import json
import sys

import botocore.session
from botocore.config import Config


def main():
    endpoint, connection_id, token, message = sys.argv[1:5]
    client = botocore.session.get_session().create_client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="gatehouse",
        aws_secret_access_key=token,
        config=Config(retries={"max_attempts": 1}),
    )
    client.post_to_connection(ConnectionId=connection_id, Data=message.encode())
    info = client.get_connection(ConnectionId=connection_id)
    print(json.dumps({"sourceIp": info["Identity"]["SourceIp"]}))


if __name__ == "__main__":
    main()
