"""The edge-agent daemon: config, runtime, floor state, actuation, MQTT sync, control socket, CLI."""
