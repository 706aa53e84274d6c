// A small event emitter: browsers and Node both have EventTarget, but
// listeners of plain values (not Event objects) read better in apps.

export class Emitter {
  #listeners = new Map();

  /** Calls `listener(value)` for every `type`; returns a function that stops it. */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Like `on`, for the next one only. */
  once(type, listener) {
    const off = this.on(type, (value) => {
      off();
      listener(value);
    });
    return off;
  }

  emit(type, value) {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      // One faulty listener must not stop the others, nor the connection.
      try {
        listener(value);
      } catch (error) {
        if (type !== 'error') this.emit('error', error);
        else queueMicrotask(() => { throw error; });
      }
    }
  }
}
