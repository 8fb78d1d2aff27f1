/**
 * Loaded once per workflow thread, before any workflow runs: the bundle's `preloadModules`
 * (scripts/build-lib.mjs). What it imports is shared by every workflow of that thread instead of being
 * evaluated again for each one: with the SDK's reusable V8 context every other module of the bundle is
 * instantiated per cached workflow, and zod alone was half of that (1,473 KiB per cached workflow, 758 KiB
 * with zod shared; bench:fleet, docs/performance-log.md).
 *
 * Only modules without per-workflow state may be shared, and the SDK freezes what they export once this
 * has run. zod qualifies: its module state is configuration (set at import) and registries keyed by schema.
 * Our own modules do not (schemas built here would be frozen before zod installs their lazy fields), nor
 * does `@temporalio/workflow` (it finds the running workflow through module state).
 */
import { z } from 'zod';

// zod decides whether it may compile parsers (`util.allowsEval`) the first time an object schema is built
// and caches the answer on a module object: that must happen now, before the SDK freezes that object.
z.object({ warm: z.string() }).safeParse({ warm: '' });
