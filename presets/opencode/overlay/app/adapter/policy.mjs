// policy.mjs — answers opencode permission requests from the platform config's `permission` table.
//
// opencode's own rules decide WHETHER to ask; when it asks (action "ask"), nobody is at a keyboard,
// so the adapter decides with the same table: the last matching rule for the permission wins
// (opencode's semantics, opencode.md §3.3). "allow" → reply "once", "deny" → "reject", and "ask"
// (or no rule) → the fallback X1_PERMISSION_ASK ("reject" unless set to "once").

/** Glob match with `*` (any run) and `?` (one char), anchored, as opencode's permission patterns. */
export function globMatch(glob, text) {
  const re = new RegExp(
    "^" + glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*").replace(/\?/g, ".") + "$",
  );
  return re.test(text);
}

/** The configured action ("allow" | "deny" | "ask" | null) for one permission and pattern. */
export function actionFor(permissionTable, permission, pattern) {
  if (typeof permissionTable === "string") return permissionTable;
  if (!permissionTable || typeof permissionTable !== "object") return null;
  const rule = permissionTable[permission] ?? permissionTable["*"];
  if (typeof rule === "string") return rule;
  if (!rule || typeof rule !== "object") return null;
  let action = null;
  for (const [glob, value] of Object.entries(rule)) {
    if (globMatch(glob, pattern)) action = value; // last match wins
  }
  return action;
}

/**
 * Decide the reply for an opencode `permission.asked` event.
 * @returns {{decision: string, reply: "once" | "reject"}}
 */
export function decide(permissionTable, asked, askFallback = "reject") {
  const patterns = Array.isArray(asked.patterns) && asked.patterns.length ? asked.patterns : ["*"];
  const actions = patterns.map((p) => actionFor(permissionTable, asked.permission, p));
  if (actions.includes("deny")) return { decision: "deny", reply: "reject" };
  if (actions.every((a) => a === "allow")) return { decision: "allow", reply: "once" };
  return { decision: "ask", reply: askFallback === "once" ? "once" : "reject" };
}
