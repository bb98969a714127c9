"""Talking to clouds: connections (clouds.yaml, OS_CLOUD), one retry policy for every call,
typed openstacksdk proxies, and the cloud's own words when it refuses something."""
