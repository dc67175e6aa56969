/**
 * bench/soak's workspace simulator, in a process of its own so that the gateway process's RSS
 * and heap are the gateway's alone. Announces its URL to the parent, then waits.
 */
import { demoSimOptions, startSimulator } from '../../sim/index.js';

const sim = await startSimulator({ ...demoSimOptions(), streamChunkDelayMs: 20 });
process.send?.({ url: sim.url });
process.once('disconnect', () => process.exit(0));
process.once('SIGTERM', () => {
  void sim.close().then(() => process.exit(0));
});
