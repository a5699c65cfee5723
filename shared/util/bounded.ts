/**
 * Sets `key` in `map` as its newest entry, and forgets the oldest entries beyond `max` (a Map
 * iterates in insertion order). For per-process memories that must not grow without bound.
 * `max` 0 keeps nothing.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  if (max <= 0) return;
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value as K);
}
