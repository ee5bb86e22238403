"""Layer 4, the application: the processes (worker, bridge) built from settings in one place
(`compose`), the `gridflow` CLI, the dev stack, the codec and metrics servers, the simulate command."""
