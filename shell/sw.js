// callqueue's service worker: only so that "It's your turn" can be a system notification where
// a page may not construct `new Notification()` (Android Chrome allows notifications only through
// a service worker's registration). It caches nothing and handles no fetch. A tap on the
// notification brings the customer's tab forward (or opens the app).
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((tabs) => {
      const tab = tabs.find((t) => "focus" in t);
      return tab ? tab.focus() : self.clients.openWindow("/");
    })
  );
});
