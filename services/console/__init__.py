"""The operator console: the control room's web page (alerts, adjudication, cameras,
watchlists, audit, health), talking to the platform only through its gRPC APIs."""
