// Nudge's web client: sign in, chat over /ws with live push, today's tasks and upcoming
// reminders reloaded when the server says they changed. No framework.
"use strict";

const state = { token: sessionStorage.getItem("nudge.token"), lastId: 0, socket: null, retry: 1000 };
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = "Bearer " + state.token;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
  return body;
}

function show(signedIn) {
  $("sign-in").hidden = signedIn;
  $("app").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

function addMessage(event) {
  if (event.id <= state.lastId) return;
  state.lastId = event.id;
  const item = document.createElement("li");
  item.className = event.direction;
  item.textContent = event.body;
  $("messages").appendChild(item);
  item.scrollIntoView({ block: "end" });
  $("typing").hidden = true;
}

function showReminder(event) {
  const banner = $("reminder-banner");
  banner.textContent = (event.late ? "Reminder (late): " : "Reminder: ") + event.body;
  banner.hidden = false;
  loadLists();
}

function showDigest(event) {
  const banner = $("reminder-banner");
  banner.textContent = event.text;
  banner.hidden = false;
}

async function loadLists() {
  try {
    const tasks = await api("/api/v1/me/tasks?limit=100");
    const list = $("tasks");
    list.replaceChildren(...tasks.items.filter((t) => !t.done).map((t) => {
      const li = document.createElement("li");
      li.textContent = t.title;
      return li;
    }));
    const reminders = await api("/api/v1/me/reminders?limit=100");
    const upcoming = reminders.items
      .filter((r) => r.status === "scheduled")
      .sort((a, b) => new Date(a.due_at) - new Date(b.due_at));
    $("reminders").replaceChildren(...upcoming.map((r) => {
      const li = document.createElement("li");
      li.textContent = new Date(r.due_at).toLocaleString() + " — " + r.text;
      return li;
    }));
  } catch (error) {
    console.warn("lists", error.message);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(scheme + "//" + location.host + "/ws?after=" + state.lastId, ["bearer", state.token]);
  state.socket = socket;
  socket.onopen = () => { state.retry = 1000; };
  socket.onmessage = (frame) => {
    const event = JSON.parse(frame.data);
    if (event.type === "message") addMessage(event);
    else if (event.type === "reminder") showReminder(event);
    else if (event.type === "digest") showDigest(event);
    else if (event.type === "typing") $("typing").hidden = false;
    else if (event.type === "task_changed") loadLists();
  };
  socket.onclose = () => {
    if (!state.token) return;
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 30000);
  };
}

function start() {
  show(true);
  loadLists();
  connect();
  $("chat-input").focus();
}

$("sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    const tokens = await api("/api/v1/auth/login", {
      method: "POST",
      body: JSON.stringify({ email: $("email").value, password: $("password").value }),
    });
    state.token = tokens.access_token;
    sessionStorage.setItem("nudge.token", state.token);
    start();
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
});

$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
  state.socket.send(JSON.stringify({ type: "message", text }));
  input.value = "";
});

$("sign-out").addEventListener("click", () => {
  state.token = null;
  sessionStorage.removeItem("nudge.token");
  if (state.socket) state.socket.close();
  show(false);
});

if (state.token) start(); else show(false);
