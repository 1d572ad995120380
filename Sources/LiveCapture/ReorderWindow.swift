import CaptureFiles

/// Puts the packets of several capture sources (one per libpcap handle) into one timestamp
/// order before they are written.
///
/// Each source hands over its packets in kernel blocks, so without this a file holds runs of
/// one interface, then runs of the next. The window holds copies of the packets (out of the
/// kernel ring) and releases the oldest held packet once every source has delivered packets
/// at least as new (less `jitter`, since one source's own timestamps can be out of order
/// across CPUs by a little), or once it is older than `window` by the clock (a source that
/// is idle holds nothing back for longer than that), or when the held bytes exceed `budget`.
/// A packet that arrives older than a packet already written is written at once and
/// flagged to the writer (which counts it): the file is not in strict time order there.
///
/// Memory: held packet bytes plus 64 bytes per packet stay at most `budget` (plus the one
/// packet being added). Behind them, each source's arena grows to at most twice its held
/// bytes (or 4 MiB) before it is compacted into a spare array of the same size, so the
/// arrays stay within about four times the budget (64 MiB by default) plus 8 MiB per source.
struct ReorderWindow {
  /// Default time window: far beyond the 10 ms block retire time, so a source is only
  /// "late" when the capture thread was starved for that long.
  static let defaultWindowNanoseconds: Int64 = 250_000_000
  /// Default bound on held bytes (16 MiB: 250 ms of ~500 Mbit/s of captured bytes).
  static let defaultBudget = 16 << 20
  /// Accounting cost of one held packet beyond its bytes (its index entry and slack).
  static let perPacketCost = 64

  struct Entry {
    var timestamp: Int64
    var offset: Int
    var capturedLength: Int32
    var originalLength: Int32
    var interface: Int32
    var direction: PacketDirection
  }

  /// One source's held packets: bytes in arrival order, entries sorted by timestamp.
  struct Source {
    var bytes: [UInt8] = []
    /// Where `compact` copies to; kept with its capacity, so compacting allocates nothing
    /// once both arrays have grown.
    var spare: [UInt8] = []
    var entries: [Entry] = []
    var head = 0
    var liveBytes = 0
    /// Newest timestamp this source has delivered (nil before its first packet).
    var newest: Int64?

    var isEmpty: Bool { head == entries.count }
    var first: Entry? { isEmpty ? nil : entries[head] }

    mutating func append(_ entry: Entry, _ data: UnsafeRawBufferPointer) {
      var entry = entry
      entry.offset = bytes.count
      bytes.append(contentsOf: data)
      liveBytes += data.count
      // Kept sorted by timestamp; packets come nearly in order, so this walks back little.
      var index = entries.count
      entries.append(entry)
      while index > head && entries[index - 1].timestamp > entry.timestamp {
        entries[index] = entries[index - 1]
        index -= 1
      }
      entries[index] = entry
    }

    mutating func removeFirst() {
      liveBytes -= Int(entries[head].capturedLength)
      head += 1
      if head == entries.count {
        entries.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
        head = 0
      } else if head >= 4096 && head * 2 >= entries.count {
        entries.removeFirst(head)
        head = 0
      }
      if bytes.count >= 4 << 20 && bytes.count >= 2 * liveBytes { compact() }
    }

    /// Moves the live packets' bytes to the front (in timestamp order).
    mutating func compact() {
      spare.removeAll(keepingCapacity: true)
      bytes.withUnsafeBytes { raw in
        for index in head..<entries.count {
          let entry = entries[index]
          entries[index].offset = spare.count
          spare.append(
            contentsOf: UnsafeRawBufferPointer(
              rebasing: raw[entry.offset..<entry.offset + Int(entry.capturedLength)]))
        }
      }
      swap(&bytes, &spare)
    }
  }

  let windowNanoseconds: Int64
  let jitterNanoseconds: Int64
  let budget: Int
  private(set) var sources: [Source]
  private(set) var heldCost = 0
  private(set) var heldPackets = 0
  /// Timestamp of the last packet written (nil before the first).
  private(set) var lastWritten: Int64?

  init(
    sources: Int, windowNanoseconds: Int64 = ReorderWindow.defaultWindowNanoseconds,
    jitterNanoseconds: Int64 = 1_000_000, budget: Int = ReorderWindow.defaultBudget
  ) {
    self.sources = Array(repeating: Source(), count: sources)
    self.windowNanoseconds = windowNanoseconds
    self.jitterNanoseconds = jitterNanoseconds
    self.budget = budget
  }

  /// The write callback: interface, timestamp, original length, data, direction, and whether
  /// the packet is older than one already written (out of time order).
  typealias Write = (Int, Int64, Int, UnsafeRawBufferPointer, PacketDirection, Bool) -> Void

  /// Takes one packet from `source`. One older than the last written packet is written at
  /// once (and counted); otherwise it is held, and the oldest held packets are released
  /// while the held bytes exceed the budget.
  mutating func add(
    source: Int, interface: Int, timestamp: Int64, originalLength: Int, data: UnsafeRawBufferPointer,
    direction: PacketDirection, write: Write
  ) {
    if let newest = sources[source].newest {
      if timestamp > newest { sources[source].newest = timestamp }
    } else {
      sources[source].newest = timestamp
    }
    if let lastWritten, timestamp < lastWritten {
      write(interface, timestamp, originalLength, data, direction, true)
      return
    }
    sources[source].append(
      Entry(
        timestamp: timestamp, offset: 0, capturedLength: Int32(data.count),
        originalLength: Int32(truncatingIfNeeded: originalLength), interface: Int32(interface),
        direction: direction), data)
    heldCost += data.count + Self.perPacketCost
    heldPackets += 1
    while heldCost > budget, releaseOldest(write) {}
  }

  /// Writes, in timestamp order, every held packet that no source can still precede: those
  /// at or before every source's newest delivery (less the jitter allowance) or older than
  /// the window at `now` (realtime ns). `all`: everything held (stop paths).
  mutating func release(now: Int64, all: Bool = false, write: Write) {
    if all {
      while releaseOldest(write) {}
      return
    }
    let horizon = now - windowNanoseconds
    var limit = Int64.max
    for source in sources {
      // A source that has delivered nothing yet holds packets back for the window only.
      let delivered = source.newest.map { $0 - jitterNanoseconds } ?? horizon
      limit = min(limit, max(delivered, horizon))
    }
    while let (index, entry) = oldest(), entry.timestamp <= limit {
      emit(index, write)
    }
  }

  func oldest() -> (Int, Entry)? {
    var best: (Int, Entry)?
    for index in sources.indices {
      guard let entry = sources[index].first else { continue }
      if let current = best, current.1.timestamp <= entry.timestamp { continue }
      best = (index, entry)
    }
    return best
  }

  private mutating func releaseOldest(_ write: Write) -> Bool {
    guard let (index, _) = oldest() else { return false }
    emit(index, write)
    return true
  }

  private mutating func emit(_ index: Int, _ write: Write) {
    let entry = sources[index].entries[sources[index].head]
    let length = Int(entry.capturedLength)
    // Only a packet older than one written before (which the release order prevents) would
    // be out of order here; it is checked rather than assumed.
    let late = lastWritten.map { entry.timestamp < $0 } ?? false
    if !late { lastWritten = entry.timestamp }
    sources[index].bytes.withUnsafeBytes { raw in
      write(
        Int(entry.interface), entry.timestamp, Int(entry.originalLength),
        UnsafeRawBufferPointer(rebasing: raw[entry.offset..<entry.offset + length]), entry.direction, late)
    }
    sources[index].removeFirst()
    heldCost -= length + Self.perPacketCost
    heldPackets -= 1
  }
}
