import Foundation

/// A hierarchical navigable small-world graph (Malkov & Yashunin) over unit vectors: approximate
/// nearest-neighbour search in about logarithmic time, for semantic-cache partitions too large to
/// scan. Insert-only; removed entries are marked and skipped.
struct HNSW: Sendable {
    let maxNeighbors: Int
    let construction: Int
    let search: Int
    private let levelFactor: Double
    private(set) var vectors: [[Float]] = []
    private(set) var keys: [String] = []
    private var nodes: [String: Int] = [:]
    private var removed: [Bool] = []
    /// links[node][level] = neighbours of `node` on `level`.
    private var links: [[[Int32]]] = []
    private var entry: Int?
    private var topLevel = 0
    private var random = SplitMix(seed: 0x5EED)

    init(maxNeighbors: Int = 16, construction: Int = 64, search: Int = 48) {
        self.maxNeighbors = maxNeighbors
        self.construction = construction
        self.search = search
        self.levelFactor = 1 / log(Double(maxNeighbors))
    }

    var count: Int { self.vectors.count }

    mutating func insert(_ vector: [Float], key: String) {
        let node = self.vectors.count
        let level = Int(-log(max(Double.leastNonzeroMagnitude, self.random.unit())) * self.levelFactor)
        self.vectors.append(vector)
        self.keys.append(key)
        self.nodes[key] = node
        self.removed.append(false)
        self.links.append(Array(repeating: [], count: level + 1))
        guard var current = self.entry else {
            self.entry = node
            self.topLevel = level
            return
        }
        if self.topLevel > level {
            for layer in stride(from: self.topLevel, to: level, by: -1) {
                current = self.greedy(vector, from: current, level: layer)
            }
        }
        for layer in stride(from: min(level, self.topLevel), through: 0, by: -1) {
            let found = self.searchLayer(vector, from: [current], width: self.construction, level: layer)
            let limit = layer == 0 ? self.maxNeighbors * 2 : self.maxNeighbors
            let chosen = found.prefix(limit).map(\.node)
            self.links[node][layer] = chosen.map(Int32.init)
            for neighbour in chosen {
                self.links[neighbour][layer].append(Int32(node))
                if self.links[neighbour][layer].count > limit { self.prune(neighbour, level: layer, limit: limit) }
            }
            if let closest = found.first?.node { current = closest }
        }
        if level > self.topLevel {
            self.topLevel = level
            self.entry = node
        }
    }

    mutating func remove(key: String) {
        if let node = self.nodes.removeValue(forKey: key) { self.removed[node] = true }
    }

    /// The nearest live entry and its similarity.
    func nearest(_ vector: [Float]) -> (key: String, similarity: Double)? {
        guard var current = self.entry else { return nil }
        for layer in stride(from: self.topLevel, to: 0, by: -1) {
            current = self.greedy(vector, from: current, level: layer)
        }
        for candidate in self.searchLayer(vector, from: [current], width: self.search, level: 0) where !self.removed[candidate.node] {
            return (self.keys[candidate.node], Double(1 - candidate.distance))
        }
        return nil
    }

    // MARK: -

    private func distance(_ vector: [Float], _ node: Int) -> Float {
        1 - SemanticIndex.dot(vector, self.vectors[node])
    }

    private func greedy(_ vector: [Float], from start: Int, level: Int) -> Int {
        var current = start
        var best = self.distance(vector, current)
        var improved = true
        while improved {
            improved = false
            for neighbour in self.links[current][level] {
                let distance = self.distance(vector, Int(neighbour))
                if distance < best {
                    best = distance
                    current = Int(neighbour)
                    improved = true
                }
            }
        }
        return current
    }

    /// The `width` closest nodes found from `starts` on `level`, closest first.
    private func searchLayer(_ vector: [Float], from starts: [Int], width: Int, level: Int) -> [(node: Int, distance: Float)] {
        var visited = Set<Int>(starts)
        var candidates = starts.map { (node: $0, distance: self.distance(vector, $0)) }
        var results = candidates
        candidates.sort { $0.distance > $1.distance }
        results.sort { $0.distance < $1.distance }
        while let closest = candidates.popLast() {
            if let worst = results.last, results.count >= width, closest.distance > worst.distance { break }
            for neighbour in self.links[closest.node][level] where visited.insert(Int(neighbour)).inserted {
                let node = Int(neighbour)
                let distance = self.distance(vector, node)
                guard results.count < width || distance < (results.last?.distance ?? .infinity) else { continue }
                Self.insertSorted(&results, (node, distance), ascending: true)
                if results.count > width { results.removeLast() }
                Self.insertSorted(&candidates, (node, distance), ascending: false)
            }
        }
        return results
    }

    /// Keeps `node`'s `limit` closest links on `level`.
    private mutating func prune(_ node: Int, level: Int, limit: Int) {
        let vector = self.vectors[node]
        let ranked = self.links[node][level].map { (link: $0, distance: self.distance(vector, Int($0))) }.sorted { $0.distance < $1.distance }
        self.links[node][level] = ranked.prefix(limit).map(\.link)
    }

    private static func insertSorted(_ array: inout [(node: Int, distance: Float)], _ item: (node: Int, distance: Float), ascending: Bool) {
        var low = 0
        var high = array.count
        while low < high {
            let middle = (low + high) / 2
            let before = ascending ? array[middle].distance < item.distance : array[middle].distance > item.distance
            if before { low = middle + 1 } else { high = middle }
        }
        array.insert(item, at: low)
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
