// The page's service worker (registered by main.js as a module, scope: the page's directory). It shows
// a Web Push (soju.im/webpush: one IRC line per push) as a notification, and a click on it opens the
// page on that conversation (or brings an open page forward and switches it there). It caches nothing:
// the chat needs the server anyway.

import { chatWindow, conversationUrl, pushNotification } from "./push.js";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  const line = event.data ? event.data.text() : "";
  const note = pushNotification(line);
  // A push must show something (the browser insists): a line we cannot read still says "new message".
  const title = note ? note.title : "salotto";
  const options = note
    ? { body: note.body, tag: note.tag, renotify: true, data: { target: note.target }, icon: "icon-192.png" }
    : { body: "New message", data: { target: null }, icon: "icon-192.png" };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.target) || null;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const page = chatWindow(windows, self.registration.scope);
    if (page) {
      if (target) page.postMessage({ type: "open", target });
      await page.focus();
      return;
    }
    await self.clients.openWindow(target ? conversationUrl(self.registration.scope, target) : self.registration.scope);
  })());
});
