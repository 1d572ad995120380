import CaptureFiles
import Foundation

/// Reads one capture on its own thread and hands out its packets in batches — decoded and
/// keyed for pairing when asked — so reading (and decoding) the two sides runs on other
/// cores than the pairing or writing. At most `queueDepth` batches wait, so memory stays flat.
/// `next()` gives the packets one by one, in file order. A value type, so the hot path has
/// no dynamic exclusivity checks; do not copy one (copies share the reading thread).
public struct SideFeed {
  public struct Item {
    public var packet: CapturedPacket
    /// Set when the feed describes packets for pairing.
    public var described: PacketKey?
    /// The packet's time on the client clock (through the coarse model for the server).
    public var mapped: Int64
  }

  struct Batch: @unchecked Sendable {  // packets point into the reader's mapping, kept alive by it
    var items: [Item]
    /// The reader's interfaces, when they (or their statistics) changed since the previous
    /// batch.
    var interfaces: [CaptureInterface]?
    /// Set on the last batch when the file ended in an error.
    var failure: CaptureFileError?
    var last: Bool
  }

  static let batchSize = 2048
  static let queueDepth = 4

  private let reading: Reading
  private var batch: [Item] = []
  private var position = 0
  private var ended = false
  private var failure: CaptureFileError?
  /// The interfaces of the file so far (an item's `packet.interface` indexes them).
  public private(set) var interfaces: [CaptureInterface] = []

  /// Opens `path` (errors are thrown here) and starts reading it. With a `keyer`, packets are
  /// described for pairing; with `coarse`, a server's times are mapped onto the client clock.
  /// Packets come in time order within `order` (`TimeOrderedPackets.fileOrder`: as written).
  /// An `observer` sees every packet on the reading thread (and nothing else until the feed
  /// has handed out its last packet).
  public init(
    path: String, side: Side = .client, coarse: ClockModel? = nil, keyer: PacketKeyer? = nil,
    order: TimeOrderedPackets.Window = .standard, observer: (any PairingWalkObserver)? = nil
  )
    throws(CaptureFileError)
  {
    let reader = UncheckedReader(reader: try TimeOrderedPackets(path: path, window: order))
    let observing = UncheckedObserver(observer: observer)
    observer?.walkBegins(path: path, side: side, format: reader.reader.reader.format, layout: keyer?.layout)
    let channel = Channel()
    // The feed keeps the reader (its mapping) alive: packets point into it after the
    // reading thread has finished.
    reading = Reading(channel, reader)
    let thread = Thread {
      Self.read(
        reader.reader, side: side, coarse: coarse, keyer: keyer, observer: observing.observer, into: channel)
    }
    thread.name = "smcpair-read-\(side.rawValue)"
    thread.start()
  }

  /// The next packet, nil at the end of the file; a damaged file throws once every packet
  /// before the damage was handed out.
  public mutating func next() throws(CaptureFileError) -> Item? {
    while position >= batch.count {
      if ended {
        if let failure {
          self.failure = nil
          throw failure
        }
        return nil
      }
      let next = reading.channel.take()
      batch = next.items
      position = 0
      ended = next.last
      failure = next.failure
      if let interfaces = next.interfaces { self.interfaces = interfaces }
    }
    position += 1
    return batch[position - 1]
  }

  /// Drops the file's resident pages in `start..<end`: a consumer that keeps packets a while
  /// (merged.pcapng's reorder queue) touches pages again after the reader released them.
  public func releasePages(from start: Int, to end: Int) {
    reading.reader.reader.reader.releasePages(from: start, to: end)
  }

  private static func read(
    _ reader: TimeOrderedPackets, side: Side, coarse: ClockModel?, keyer: PacketKeyer?,
    observer: (any PairingWalkObserver)?, into channel: Channel
  ) {
    var keyer = keyer
    var items: [Item] = []
    items.reserveCapacity(batchSize)
    var failure: CaptureFileError?
    // Compared whole, not by count: statistics blocks (usually at the end) change an
    // interface already sent.
    var interfacesSent: [CaptureInterface] = []
    func send(last: Bool) -> Bool {
      let interfaces = reader.interfaces != interfacesSent ? reader.interfaces : nil
      interfacesSent = reader.interfaces
      return channel.put(Batch(items: items, interfaces: interfaces, failure: failure, last: last))
    }
    while true {
      do throws(CaptureFileError) {
        guard let packet = try reader.next() else {
          observer?.walkEnds(interfaces: reader.interfaces)
          break
        }
        let linkType = reader.interfaces[packet.interface].linkType
        observer?.observe(packet, linkType: linkType)
        let described = keyer?.describe(packet, linkType: linkType)
        let mapped =
          side == .server
          ? coarse?.clientTime(atServer: packet.timestampNanoseconds) ?? packet.timestampNanoseconds
          : packet.timestampNanoseconds
        items.append(Item(packet: packet, described: described, mapped: mapped))
      } catch {
        failure = error
        break
      }
      if items.count == batchSize {
        guard send(last: false) else { return }
        items = []
        items.reserveCapacity(batchSize)
      }
    }
    _ = send(last: true)
  }

  /// Stops the reading thread when the last copy of the feed goes away, and keeps the
  /// file mapped until then.
  private final class Reading {
    let channel: Channel
    let reader: UncheckedReader
    init(_ channel: Channel, _ reader: UncheckedReader) {
      self.channel = channel
      self.reader = reader
    }
    deinit { channel.cancel() }
  }

  // Used by the reading thread only, but for the stateless `releasePages(from:to:)`.
  private struct UncheckedReader: @unchecked Sendable {
    let reader: TimeOrderedPackets
  }

  /// The observer, handed to the reading thread; its owner reads it only after the last
  /// batch (the channel's lock orders the two).
  private struct UncheckedObserver: @unchecked Sendable {
    let observer: (any PairingWalkObserver)?
  }

  /// A bounded queue of batches between the reading thread and its consumer.
  private final class Channel: @unchecked Sendable {  // every field is guarded by `condition`
    private let condition = NSCondition()
    private var batches: [Batch] = []
    private var cancelled = false

    /// False when the consumer went away: the reader stops.
    func put(_ batch: Batch) -> Bool {
      condition.lock()
      defer { condition.unlock() }
      while batches.count >= SideFeed.queueDepth && !cancelled { condition.wait() }
      guard !cancelled else { return false }
      batches.append(batch)
      condition.broadcast()
      return true
    }

    func take() -> Batch {
      condition.lock()
      defer { condition.unlock() }
      while batches.isEmpty { condition.wait() }
      let batch = batches.removeFirst()
      condition.broadcast()
      return batch
    }

    func cancel() {
      condition.lock()
      cancelled = true
      batches.removeAll()
      condition.broadcast()
      condition.unlock()
    }
  }
}
