import CVectorMath
import Foundation

/// A hierarchical navigable small-world graph (Malkov & Yashunin) over unit vectors: approximate
/// nearest-neighbour search in about logarithmic time, for semantic-cache partitions too large to
/// scan.
///
/// Laid out for the cache's hot path: the vectors in one contiguous buffer, level-0 links (where a
/// search spends nearly all its time) in fixed-size slots of one flat array, a bitset for visited
/// nodes and binary heaps for the search frontier. Removed entries stay in the graph as waypoints
/// (a search passes through them but never returns them) and their slots are reused by later
/// inserts, so a partition that churns does not grow.
struct HNSW: Sendable {
    typealias Node = Int32

    /// Links a node keeps on the upper levels; level 0 keeps twice as many.
    let maxNeighbors: Int
    /// The search width while inserting: wider builds a better graph, slower.
    let construction: Int
    /// The search width of a lookup: wider finds more, slower.
    let search: Int
    private let levelFactor: Double
    private var dimensions = 0
    /// Node n's vector is `vectors[n * dimensions ..< (n + 1) * dimensions]`, in half precision
    /// (binary16 bits): a search is bound by how many bytes of vectors it reads, and similarities
    /// stay within about 0.001.
    private var vectors: [UInt16] = []
    private var keys: [String] = []
    private var nodes: [String: Node] = [:]
    private var removed: [Bool] = []
    /// Slots of removed entries, for the next inserts.
    private var free: [Node] = []
    /// Level 0: node n's link count at `n * levelZeroStride`, its links in the slots after it.
    private var levelZero: [Node] = []
    /// Levels 1…top of the few nodes that have them: `upper[n][level - 1]`.
    private var upper: [[[Node]]] = []
    private var entry: Node?
    private var topLevel = 0
    private var random = SplitMix(seed: 0x5EED)

    init(maxNeighbors: Int = 16, construction: Int = 100, search: Int = 64) {
        self.maxNeighbors = max(2, maxNeighbors)
        self.construction = max(1, construction)
        self.search = max(1, search)
        self.levelFactor = 1 / log(Double(self.maxNeighbors))
    }

    /// Live entries.
    var count: Int { self.nodes.count }
    /// Live and removed entries: what the graph holds.
    var slots: Int { self.keys.count }
    private var levelZeroLimit: Int { self.maxNeighbors * 2 }
    private var levelZeroStride: Int { self.levelZeroLimit + 1 }

    mutating func insert(_ vector: [Float], key: String) {
        if self.dimensions == 0 { self.dimensions = vector.count }
        guard vector.count == self.dimensions else { return }
        self.remove(key: key)
        let node: Node
        let level: Int
        if let slot = self.free.lastIndex(where: { $0 != self.entry }) {
            // A removed entry's slot (never the entry point's): same level, new vector, links chosen
            // afresh below (the old ones still lead out while they are). Links that point here from
            // elsewhere now lead to the new vector, which only costs a little reach.
            node = self.free[slot]
            self.free.swapAt(slot, self.free.count - 1)
            self.free.removeLast()
            level = self.upper[Int(node)].count
            let start = Int(node) * self.dimensions
            self.vectors.replaceSubrange(start..<start + self.dimensions, with: Self.half(vector))
            self.keys[Int(node)] = key
            self.removed[Int(node)] = false
        } else {
            node = Node(self.slots)
            level = min(Int(-log(max(Double.leastNonzeroMagnitude, self.random.unit())) * self.levelFactor), 16)
            self.vectors.append(contentsOf: Self.half(vector))
            self.keys.append(key)
            self.removed.append(false)
            self.levelZero.append(contentsOf: repeatElement(0, count: self.levelZeroStride))
            self.upper.append(Array(repeating: [], count: level))
        }
        self.nodes[key] = node
        guard let start = self.entry, start != node else {
            self.entry = node
            self.topLevel = level
            return
        }
        var current = (node: start, distance: self.distance(vector, start))
        for layer in stride(from: self.topLevel, to: level, by: -1) {
            current = self.greedy(vector, from: current, level: layer)
        }
        var visited = VisitedSet(count: self.slots)
        for layer in stride(from: min(level, self.topLevel), through: 0, by: -1) {
            visited.clear()
            visited.insert(node)
            let found = self.searchLayer(vector, from: current, width: self.construction, level: layer, visited: &visited).filter { $0.node != node }
            let limit = layer == 0 ? self.levelZeroLimit : self.maxNeighbors
            let chosen = self.diverse(found, limit: limit)
            self.setLinks(chosen.map(\.node), of: node, level: layer)
            for neighbour in chosen {
                self.link(neighbour.node, to: node, distance: neighbour.distance, level: layer, limit: limit)
            }
            if let closest = found.first { current = closest }
        }
        if level > self.topLevel {
            self.topLevel = level
            self.entry = node
        }
    }

    mutating func remove(key: String) {
        guard let node = self.nodes.removeValue(forKey: key) else { return }
        self.removed[Int(node)] = true
        self.free.append(node)
    }

    /// The nearest live entry and its similarity.
    func nearest(_ vector: [Float]) -> (key: String, similarity: Double)? {
        guard let start = self.entry, vector.count == self.dimensions else { return nil }
        var current = (node: start, distance: self.distance(vector, start))
        for layer in stride(from: self.topLevel, to: 0, by: -1) {
            current = self.greedy(vector, from: current, level: layer)
        }
        var visited = VisitedSet(count: self.slots)
        for candidate in self.searchLayer(vector, from: current, width: self.search, level: 0, visited: &visited)
        where !self.removed[Int(candidate.node)] {
            return (self.keys[Int(candidate.node)], Double(1 - candidate.distance))
        }
        return nil
    }

    // MARK: - Search

    typealias Neighbour = (node: Node, distance: Float)

    private func distance(_ vector: [Float], _ node: Node) -> Float {
        vector.withUnsafeBufferPointer { self.distance($0.baseAddress!, node) }
    }

    private func distance(_ vector: UnsafePointer<Float>, _ node: Node) -> Float {
        self.vectors.withUnsafeBufferPointer { stored in
            1 - switchyard_dot_half(vector, stored.baseAddress! + Int(node) * self.dimensions, self.dimensions)
        }
    }

    private func distance(between first: Node, _ second: Node) -> Float {
        self.vectors.withUnsafeBufferPointer { stored in
            1 - switchyard_dot_halves(stored.baseAddress! + Int(first) * self.dimensions, stored.baseAddress! + Int(second) * self.dimensions, self.dimensions)
        }
    }

    private static func half(_ vector: [Float]) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: vector.count) { buffer, count in
            vector.withUnsafeBufferPointer { switchyard_to_half($0.baseAddress!, buffer.baseAddress!, vector.count) }
            count = vector.count
        }
    }

    /// Calls `body` with `node`'s links on `level`.
    private func withLinks<Result>(of node: Node, level: Int, _ body: (UnsafeBufferPointer<Node>) -> Result) -> Result {
        if level > 0 { return self.upper[Int(node)][level - 1].withUnsafeBufferPointer(body) }
        return self.levelZero.withUnsafeBufferPointer { all in
            let start = Int(node) * self.levelZeroStride
            return body(UnsafeBufferPointer(rebasing: all[(start + 1)..<(start + 1 + Int(all[start]))]))
        }
    }

    /// Walks to ever closer neighbours on one level, for the levels above where the search starts.
    private func greedy(_ vector: [Float], from start: Neighbour, level: Int) -> Neighbour {
        var current = start
        var improved = true
        while improved {
            improved = false
            self.withLinks(of: current.node, level: level) { links in
                for neighbour in links {
                    let distance = self.distance(vector, neighbour)
                    if distance < current.distance {
                        current = (neighbour, distance)
                        improved = true
                    }
                }
            }
        }
        return current
    }

    /// The `width` closest nodes found from `start` on `level`, closest first.
    private func searchLayer(_ vector: [Float], from start: Neighbour, width: Int, level: Int, visited: inout VisitedSet) -> [Neighbour] {
        vector.withUnsafeBufferPointer { query in
            var frontier = NeighbourHeap(closestFirst: true)
            var results = NeighbourHeap(closestFirst: false)
            // Seen, so that a neighbour's link back to it does not bring it in twice.
            visited.insert(start.node)
            frontier.push(start)
            results.push(start)
            while let closest = frontier.pop() {
                if results.count >= width, let worst = results.top, closest.distance > worst.distance { break }
                self.withLinks(of: closest.node, level: level) { links in
                    for neighbour in links where visited.insert(neighbour) {
                        let distance = self.distance(query.baseAddress!, neighbour)
                        if results.count < width || distance < (results.top?.distance ?? .infinity) {
                            frontier.push((neighbour, distance))
                            results.push((neighbour, distance))
                            if results.count > width { _ = results.pop() }
                        }
                    }
                }
            }
            return results.sortedClosestFirst()
        }
    }

    // MARK: - Links

    /// Up to `limit` of `candidates` (closest first), each closer to the base than to any already
    /// chosen: links that point in different directions, so a search can leave a tight cluster
    /// (the paper's heuristic). Places left over go to the closest of the rest.
    private func diverse(_ candidates: [Neighbour], limit: Int) -> [Neighbour] {
        var chosen: [Neighbour] = []
        var passed: [Neighbour] = []
        for candidate in candidates {
            if chosen.count == limit { break }
            if chosen.allSatisfy({ self.distance(between: candidate.node, $0.node) > candidate.distance }) {
                chosen.append(candidate)
            } else {
                passed.append(candidate)
            }
        }
        chosen.append(contentsOf: passed.prefix(limit - chosen.count))
        return chosen
    }

    private mutating func setLinks(_ links: [Node], of node: Node, level: Int) {
        if level > 0 {
            self.upper[Int(node)][level - 1] = links
            return
        }
        let start = Int(node) * self.levelZeroStride
        self.levelZero[start] = Node(links.count)
        for (offset, link) in links.enumerated() { self.levelZero[start + 1 + offset] = link }
    }

    /// Adds a link from `node` to `newcomer`; a full list keeps its diverse best. (Dropping the
    /// farthest instead halves the insert time, but recall at 100,000 clustered vectors fell from
    /// 1.0 to 0.94.)
    private mutating func link(_ node: Node, to newcomer: Node, distance: Float, level: Int, limit: Int) {
        var links = self.withLinks(of: node, level: level) { Array($0) }
        guard !links.contains(newcomer) else { return }
        if links.count < limit {
            links.append(newcomer)
        } else {
            let ranked = (links.map { ($0, self.distance(between: node, $0)) } + [(newcomer, distance)]).sorted { $0.1 < $1.1 }
            links = self.diverse(ranked, limit: limit).map(\.node)
        }
        self.setLinks(links, of: node, level: level)
    }
}

/// Nodes seen by one search: a bit each.
private struct VisitedSet {
    private var words: [UInt64]

    init(count: Int) {
        self.words = Array(repeating: 0, count: (count + 63) / 64)
    }

    /// - Returns: whether `node` was new.
    @discardableResult
    mutating func insert(_ node: HNSW.Node) -> Bool {
        let (word, bit) = (Int(node) >> 6, UInt64(1) << UInt64(node & 63))
        if self.words[word] & bit != 0 { return false }
        self.words[word] |= bit
        return true
    }

    mutating func clear() {
        for index in self.words.indices { self.words[index] = 0 }
    }
}

/// A binary heap of neighbours with the closest (or the farthest) on top.
private struct NeighbourHeap {
    private var items: [HNSW.Neighbour] = []
    private let closestFirst: Bool

    init(closestFirst: Bool) {
        self.closestFirst = closestFirst
    }

    var count: Int { self.items.count }
    var top: HNSW.Neighbour? { self.items.first }

    private func above(_ first: Int, _ second: Int) -> Bool {
        self.closestFirst ? self.items[first].distance < self.items[second].distance : self.items[first].distance > self.items[second].distance
    }

    mutating func push(_ item: HNSW.Neighbour) {
        self.items.append(item)
        var child = self.items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.above(child, parent) else { break }
            self.items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> HNSW.Neighbour? {
        guard !self.items.isEmpty else { return nil }
        self.items.swapAt(0, self.items.count - 1)
        let popped = self.items.removeLast()
        var parent = 0
        while true {
            let (left, right) = (parent * 2 + 1, parent * 2 + 2)
            var chosen = parent
            if left < self.items.count && self.above(left, chosen) { chosen = left }
            if right < self.items.count && self.above(right, chosen) { chosen = right }
            guard chosen != parent else { break }
            self.items.swapAt(parent, chosen)
            parent = chosen
        }
        return popped
    }

    func sortedClosestFirst() -> [HNSW.Neighbour] {
        self.items.sorted { $0.distance < $1.distance }
    }
}

/// SplitMix64: a small seeded generator, so a graph is built the same way every run (and tests
/// draw the same numbers every run).
public struct SplitMix: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func unit() -> Double {
        Double(self.next() >> 11) / Double(1 << 53)
    }
}
