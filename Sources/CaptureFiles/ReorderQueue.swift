/// Items put back in time order through a bounded window, as `TimeOrderedPackets` does for
/// one file, for any element and any time (merged.pcapng orders by the aligned time).
///
/// An item is released once the newest time pushed is more than `window.nanoseconds` past it,
/// once `window.packets` items wait, or when draining. Equal times keep push order. An item
/// pushed after a later one was released cannot be put in place: it is counted in
/// `lateArrivals`, and the caller decides (merged.pcapng starts again with a wider window).
///
/// Captures are nearly in order, so items that arrive in order go to a FIFO run (O(1)); only
/// the ones earlier than the run's last go to a heap. Inlinable: used per packet from other
/// modules, where an unspecialized generic would copy every element through value witnesses.
public struct ReorderQueue<Element> {
  public let window: TimeOrderedPackets.Window
  /// Items waiting.
  @inlinable public var count: Int { waiting }
  /// Items pushed after a later one had been released (their order is lost).
  @inlinable public var lateArrivals: Int { late }
  @usableFromInline var waiting = 0
  @usableFromInline var late = 0

  @usableFromInline
  struct Entry {
    @usableFromInline var time: Int64
    @usableFromInline var sequence: Int
    @usableFromInline var element: Element

    @inlinable
    init(time: Int64, sequence: Int, element: Element) {
      self.time = time
      self.sequence = sequence
      self.element = element
    }

    @inlinable
    func precedes(_ other: Entry) -> Bool { (time, sequence) < (other.time, other.sequence) }
  }

  /// Arrivals in time order: `run[runHead...]` waits.
  @usableFromInline var run: [Entry] = []
  @usableFromInline var runHead = 0
  /// Arrivals earlier than the run's last entry, a min-heap by (time, sequence).
  @usableFromInline var heap: [Entry] = []
  @usableFromInline var sequence = 0
  @usableFromInline var newest = Int64.min
  @usableFromInline var lastReleased = Int64.min

  public init(window: TimeOrderedPackets.Window) { self.window = window }

  @inlinable
  public var isEmpty: Bool { waiting == 0 }

  /// Adds `element` at `time`.
  @inlinable
  public mutating func push(_ element: Element, time: Int64) {
    if time < lastReleased { late += 1 }
    newest = max(newest, time)
    let entry = Entry(time: time, sequence: sequence, element: element)
    sequence += 1
    waiting += 1
    if let last = run.last, runHead < run.count, time < last.time {
      heapPush(entry)
    } else {
      run.append(entry)
    }
  }

  /// The earliest item when the window lets it go; with `draining` (nothing more will be
  /// pushed), the earliest item whatever the window.
  @inlinable
  public mutating func pop(draining: Bool = false) -> (time: Int64, element: Element)? {
    guard count > 0 else { return nil }
    let fromRun = runHead < run.count && (heap.isEmpty || run[runHead].precedes(heap[0]))
    let earliest = fromRun ? run[runHead] : heap[0]
    guard
      draining || count >= window.packets
        || newest.subtractingReportingOverflow(earliest.time).partialValue > window.nanoseconds
    else { return nil }
    if fromRun {
      runHead += 1
      if runHead == run.count {
        run.removeAll(keepingCapacity: true)
        runHead = 0
      } else if runHead >= 4096 && runHead * 2 >= run.count {
        run.removeFirst(runHead)
        runHead = 0
      }
    } else {
      heapPopMin()
    }
    waiting -= 1
    lastReleased = max(lastReleased, earliest.time)
    return (earliest.time, earliest.element)
  }

  @inlinable
  mutating func heapPush(_ entry: Entry) {
    heap.append(entry)
    var child = heap.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard heap[child].precedes(heap[parent]) else { break }
      heap.swapAt(child, parent)
      child = parent
    }
  }

  @inlinable
  mutating func heapPopMin() {
    heap.swapAt(0, heap.count - 1)
    heap.removeLast()
    var parent = 0
    while true {
      let left = 2 * parent + 1
      guard left < heap.count else { break }
      let right = left + 1
      let smaller = right < heap.count && heap[right].precedes(heap[left]) ? right : left
      guard heap[smaller].precedes(heap[parent]) else { break }
      heap.swapAt(smaller, parent)
      parent = smaller
    }
  }
}

extension TimeOrderedPackets.Window {
  /// The window that puts every packet of `path` in order by `time(packet)` (say, its time
  /// on another clock): as wide as the latest packet is late, with no packet limit. Memory
  /// then follows how far the file is out of order, not its size. Reads the whole file.
  public static func covering(
    path: String, time: (CapturedPacket) -> Int64
  ) throws(CaptureFileError) -> TimeOrderedPackets.Window {
    let reader = try CaptureFileReader(path: path)
    var newest = Int64.min
    var lateness: Int64 = 0
    while let packet = try reader.next() {
      let t = time(packet)
      if t < newest {
        lateness = max(lateness, newest.subtractingReportingOverflow(t).partialValue)
      } else {
        newest = t
      }
    }
    return .init(nanoseconds: lateness, packets: .max)
  }
}
