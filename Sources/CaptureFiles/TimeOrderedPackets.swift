/// The packets of a capture file in timestamp order, read through a bounded reorder window.
///
/// Capture files are not always in time order: tcpdump `-i any`, `mergecap -a` and our own
/// agent write per-interface runs, so a dump record can sit in the file before a SYN that
/// was captured earlier. This reader keeps the packets it has read in a min-heap by
/// timestamp and releases the earliest one once the newest timestamp read is more than
/// `window.nanoseconds` past it (or once `window.packets` are held, or at the end of the
/// file). Equal timestamps keep file order. A packet that arrives after a later one has
/// already been released (it is later than the window) is returned at once, out of order,
/// and counted in `beyondWindow`.
///
/// Packets are not copied: they stay slices of the reader's memory map, which stays valid
/// for the reader's lifetime (released pages are re-read from the file when touched).
/// Frame numbers stay the file's frame numbers.
///
/// Damage: packets read before the damage are all returned (in order), then the reader's
/// `CaptureFileError` is thrown once; later calls return `nil`.
public final class TimeOrderedPackets {
  /// How far the reader looks ahead to put packets in order.
  public struct Window: Sendable, Equatable {
    /// Capture time a packet waits for earlier ones.
    public var nanoseconds: Int64
    /// Packets held at most; the earliest is released when this many are waiting.
    public var packets: Int

    public init(nanoseconds: Int64, packets: Int) {
      self.nanoseconds = max(0, nanoseconds)
      self.packets = max(1, packets)
    }

    /// 2 s of capture time and at most 262,144 packets (about 20 MiB of packet records;
    /// the packet bytes stay in the file mapping).
    public static let standard = Window(nanoseconds: 2_000_000_000, packets: 262_144)
    /// No reordering: packets as the file holds them.
    public static let fileOrder = Window(nanoseconds: 0, packets: 1)
  }

  /// The underlying file-order reader (interfaces, format, section metadata).
  public let reader: CaptureFileReader
  public let window: Window
  /// Packets whose timestamp is earlier than a packet before them in the file, put back
  /// in order (those beyond the window included).
  public private(set) var outOfOrder = 0
  /// Packets later than the window: returned where they arrived, still out of order.
  public private(set) var beyondWindow = 0
  /// Packets returned so far.
  public private(set) var packetCount = 0

  private var waiting = WaitingPackets()
  private var newestNanoseconds = Int64.min
  private var lastReleasedNanoseconds = Int64.min
  private var readerFinished = false
  private var damage: CaptureFileError?

  /// Orders the packets of `reader`, which should not have been read from yet.
  public init(reader: CaptureFileReader, window: Window = .standard) {
    self.reader = reader
    self.window = window
  }

  /// Opens `path` and orders its packets.
  public convenience init(path: String, window: Window = .standard) throws(CaptureFileError) {
    self.init(reader: try CaptureFileReader(path: path), window: window)
  }

  /// Interfaces seen so far; every packet returned refers to a known one.
  public var interfaces: [CaptureInterface] { reader.interfaces }

  /// The next packet in time order, `nil` at the end.
  public func next() throws(CaptureFileError) -> CapturedPacket? {
    while !readerFinished {
      if let earliest = waiting.min, isReleasable(earliest) { break }
      let packet: CapturedPacket?
      do {
        packet = try reader.next()
      } catch {
        damage = error
        readerFinished = true
        break
      }
      guard let packet else {
        readerFinished = true
        break
      }
      let time = packet.timestampNanoseconds
      if time < newestNanoseconds { outOfOrder += 1 }
      newestNanoseconds = max(newestNanoseconds, time)
      if time < lastReleasedNanoseconds {
        // Something later has already gone out: waiting cannot put this one in place.
        beyondWindow += 1
        packetCount += 1
        handingOut(packet)
        return packet
      }
      waiting.push(packet)
    }
    if let packet = waiting.popMin() {
      lastReleasedNanoseconds = max(lastReleasedNanoseconds, packet.timestampNanoseconds)
      packetCount += 1
      handingOut(packet)
      return packet
    }
    if let damage {
      self.damage = nil
      throw damage
    }
    return nil
  }

  /// How far into the file the packets handed out have reached, and up to where pages behind
  /// them were let go.
  private var consumedOffset = 0
  private var consumerReleased = 0
  static let releaseStep = 4 << 20
  static let releaseReach = 64 << 20

  /// The reader lets pages go behind its own position, but the window hands packets out later
  /// (up to `window.packets` behind): their pages are touched again when the consumer reads
  /// them. So pages behind what was handed out are let go here as well (a straggler further
  /// than `releaseReach` behind stays until the file is closed: memory follows the disorder,
  /// not the size).
  private func handingOut(_ packet: CapturedPacket) {
    guard packet.fileOffset > consumedOffset else { return }
    consumedOffset = packet.fileOffset
    guard consumedOffset - consumerReleased >= 2 * Self.releaseStep else { return }
    let end = consumedOffset - Self.releaseStep
    reader.releasePages(from: max(0, end - Self.releaseReach), to: end)
    consumerReleased = end
  }

  private func isReleasable(_ packet: CapturedPacket) -> Bool {
    waiting.count >= window.packets
      || newestNanoseconds.subtractingReportingOverflow(packet.timestampNanoseconds).partialValue
        > window.nanoseconds
  }
}

/// A binary min-heap of packets by (timestamp, frame number).
/// The packets waiting in the window: those that came in time order in a queue (appending
/// and taking the front are O(1): the usual case), the rest in a heap. The earliest is the
/// earlier of the two fronts.
struct WaitingPackets {
  private var ordered: [CapturedPacket] = []
  private var head = 0
  private var heap = PacketHeap()

  var count: Int { ordered.count - head + heap.count }

  var min: CapturedPacket? {
    guard head < ordered.count else { return heap.min }
    guard let other = heap.min else { return ordered[head] }
    return PacketHeap.precedes(other, ordered[head]) ? other : ordered[head]
  }

  mutating func push(_ packet: CapturedPacket) {
    if let last = ordered.last, head < ordered.count, PacketHeap.precedes(packet, last) {
      heap.push(packet)
    } else {
      if head == ordered.count {
        ordered.removeAll(keepingCapacity: true)
        head = 0
      }
      ordered.append(packet)
    }
  }

  mutating func popMin() -> CapturedPacket? {
    guard head < ordered.count else { return heap.popMin() }
    if let other = heap.min, PacketHeap.precedes(other, ordered[head]) { return heap.popMin() }
    let packet = ordered[head]
    head += 1
    if head >= 4096 && head * 2 >= ordered.count {
      ordered.removeFirst(head)
      head = 0
    }
    return packet
  }
}

struct PacketHeap {
  private var items: [CapturedPacket] = []

  var count: Int { items.count }
  var min: CapturedPacket? { items.first }

  static func precedes(_ a: CapturedPacket, _ b: CapturedPacket) -> Bool {
    (a.timestampNanoseconds, a.frame) < (b.timestampNanoseconds, b.frame)
  }

  mutating func push(_ packet: CapturedPacket) {
    items.append(packet)
    var child = items.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard Self.precedes(items[child], items[parent]) else { break }
      items.swapAt(child, parent)
      child = parent
    }
  }

  mutating func popMin() -> CapturedPacket? {
    guard !items.isEmpty else { return nil }
    items.swapAt(0, items.count - 1)
    let result = items.removeLast()
    var parent = 0
    while true {
      let left = 2 * parent + 1
      guard left < items.count else { break }
      let right = left + 1
      let smaller = right < items.count && Self.precedes(items[right], items[left]) ? right : left
      guard Self.precedes(items[smaller], items[parent]) else { break }
      items.swapAt(smaller, parent)
      parent = smaller
    }
    return result
  }
}
