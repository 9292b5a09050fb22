// mcp-server.mjs — a tiny stdio MCP server (JSON-RPC 2.0, one JSON message per line) for tests: one
// tool, `echo {text}` → "echo: <text>". Enough for opencode's MCP client to discover and call it.
import { createInterface } from "node:readline";

const send = (msg) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...msg }) + "\n");
const TOOL = {
  name: "echo",
  description: "Echo the given text back",
  inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
};

createInterface({ input: process.stdin }).on("line", (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return send({ id: null, error: { code: -32700, message: "parse error" } });
  }
  if (req.id === undefined) return; // a notification (notifications/initialized, …)
  if (req.method === "initialize") {
    return send({ id: req.id, result: { protocolVersion: req.params?.protocolVersion ?? "2024-11-05", capabilities: { tools: {} }, serverInfo: { name: "x1-probe", version: "1.0.0" } } });
  }
  if (req.method === "tools/list") return send({ id: req.id, result: { tools: [TOOL] } });
  if (req.method === "tools/call" && req.params?.name === "echo") {
    return send({ id: req.id, result: { content: [{ type: "text", text: `echo: ${req.params.arguments?.text ?? ""}` }] } });
  }
  if (req.method === "ping") return send({ id: req.id, result: {} });
  send({ id: req.id, error: { code: -32601, message: `no method ${req.method}` } });
});
