/// FIFO chains of packets per fingerprint in an open-addressing table: each key holds the
/// first and last packet of its chain (the caller links the packets in between). A key whose
/// chain empties is deleted (backward shift), so the table follows what is still chained.
/// Used by the in-memory pairing (client packets waiting for the server's) and by the
/// windowed walk (both sides' waiting packets).
struct FingerprintChains {
  private var keys: [UInt64]
  private var firsts: [Int]
  private var lasts: [Int]
  private var used: [Bool]
  private var mask: Int
  private var count = 0

  init(minimumCapacity: Int = 512) {
    var size = 1024
    while size < minimumCapacity * 2 { size <<= 1 }
    keys = [UInt64](repeating: 0, count: size)
    firsts = [Int](repeating: -1, count: size)
    lasts = [Int](repeating: -1, count: size)
    used = [Bool](repeating: false, count: size)
    mask = size - 1
  }

  private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: key) & mask }

  func slot(of key: UInt64) -> Int? {
    var slot = home(key)
    while used[slot] {
      if keys[slot] == key { return slot }
      slot = (slot + 1) & mask
    }
    return nil
  }

  /// Adds `seq` at the end of the chain of `key`; returns the chain's previous last packet
  /// (which must now link to `seq`), nil for a new chain.
  mutating func append(_ key: UInt64, _ seq: Int) -> Int? {
    if let slot = slot(of: key) {
      let previous = lasts[slot]
      lasts[slot] = seq
      return previous
    }
    if (count + 1) * 2 > keys.count { grow() }
    var slot = home(key)
    while used[slot] { slot = (slot + 1) & mask }
    used[slot] = true
    keys[slot] = key
    firsts[slot] = seq
    lasts[slot] = seq
    count += 1
    return nil
  }

  func first(at slot: Int) -> Int { firsts[slot] }

  /// Makes `following` the first packet of the chain at `slot`; -1 deletes the chain.
  mutating func replaceFirst(at slot: Int, with following: Int) {
    if following >= 0 { firsts[slot] = following } else { delete(slot) }
  }

  /// Removes and returns the first packet of the chain of `key`; `next(seq)` gives the packet
  /// after `seq` in its chain (-1 at the end).
  mutating func takeFirst(_ key: UInt64, next: (Int) -> Int) -> Int? {
    guard let slot = slot(of: key) else { return nil }
    let first = firsts[slot]
    replaceFirst(at: slot, with: next(first))
    return first
  }

  /// Linear-probing deletion: later entries of the probe run move back into the hole.
  private mutating func delete(_ removed: Int) {
    var hole = removed
    var probe = (hole + 1) & mask
    while used[probe] {
      let ideal = home(keys[probe])
      // The entry at `probe` may move to `hole` when `hole` lies on its probe path.
      let movable = hole <= probe ? (ideal <= hole || ideal > probe) : (ideal <= hole && ideal > probe)
      if movable {
        keys[hole] = keys[probe]
        firsts[hole] = firsts[probe]
        lasts[hole] = lasts[probe]
        hole = probe
      }
      probe = (probe + 1) & mask
    }
    used[hole] = false
    count -= 1
  }

  private mutating func grow() {
    let old = (keys, firsts, lasts, used)
    let size = keys.count * 2
    keys = [UInt64](repeating: 0, count: size)
    firsts = [Int](repeating: -1, count: size)
    lasts = [Int](repeating: -1, count: size)
    used = [Bool](repeating: false, count: size)
    mask = size - 1
    for slot in old.0.indices where old.3[slot] {
      var target = home(old.0[slot])
      while used[target] { target = (target + 1) & mask }
      used[target] = true
      keys[target] = old.0[slot]
      firsts[target] = old.1[slot]
      lasts[target] = old.2[slot]
    }
  }
}
