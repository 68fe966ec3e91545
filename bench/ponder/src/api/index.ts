import { Hono } from "hono";

// Ponder 1.0 requires an API file; the benchmark only uses the built-in /ready endpoint.
const app = new Hono();

export default app;
