"""The contract the agent and the hub share: names, streams, topics, schemas."""
