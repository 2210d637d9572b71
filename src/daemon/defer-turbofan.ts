// Imported first by the CLI (cli/main.ts), before any other module: the
// daemon's own modules are loaded with TurboFan already off, as with --no-opt
// on node's command line. Turned off later (in main), loading them had already
// made its code pages resident (3.6 MB of RSS on an idle worker). See tiering.ts.
import { deferTurbofan } from './tiering';

if (process.argv[2] === 'daemon') deferTurbofan();
