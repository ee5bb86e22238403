"""gridflow: civic incident escalation on Kafka and Temporal.

The code runs in four layers, each importing only those below it (`make lint` checks it):

1. `gridflow.domain`: incidents, rules, the lifecycle core, rates, the simulation engine; no I/O
   libraries (no Temporal, Kafka, Prometheus or structlog);
2. `workflows`: the Temporal shell over the core (deterministic), and the client side of its workflows;
3. `activities` and `events`: the adapters (side effects): activities for the workflows, the Kafka event
   contract, CloudEvents, the bridge and the dead letters;
4. `gridflow.app`: the application: the processes, the CLI, settings, the dev stack, the codec server.
"""
