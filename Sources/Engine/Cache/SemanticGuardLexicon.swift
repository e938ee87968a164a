/// The word lists `SemanticGuard` reads questions with: small, closed, and lowercase.
enum SemanticGuardLexicon {
    /// Number words and their values (`hundred` and up multiply what came before).
    static let numberWords: [String: Double] = [
        "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
        "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
        "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
        "dozen": 12, "hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 1_000_000_000_000,
        "twice": 2, "thrice": 3, "double": 2, "triple": 3, "half": 0.5, "quarter": 0.25,
        "twos": 2, "threes": 3, "fours": 4, "fives": 5, "sixes": 6, "sevens": 7, "eights": 8, "nines": 9, "tens": 10,
    ]

    static let romanNumerals: [String: Double] = [
        "II": 2, "III": 3, "IV": 4, "VI": 6, "VII": 7, "VIII": 8, "IX": 9, "XI": 11, "XII": 12, "XIII": 13, "XIV": 14, "XV": 15, "XVI": 16,
    ]

    static let multipliers: Set<String> = ["hundred", "thousand", "million", "billion", "trillion"]

    static let ordinalWords: [String: Double] = [
        "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
        "eleventh": 11, "twelfth": 12, "twentieth": 20, "hundredth": 100,
    ]

    /// Unit spellings to one name. Time units are units after a number only: bare, they are too
    /// often said loosely ("how many minutes", "for years") to tell two questions apart.
    static let units: [String: String] = {
        var units: [String: String] = [:]
        let groups: [(String, [String])] = [
            ("km", ["km", "kms", "kilometer", "kilometers", "kilometre", "kilometres"]), ("mi", ["mi", "mile", "miles"]),
            ("m", ["m", "meter", "meters", "metre", "metres"]), ("cm", ["cm", "centimeter", "centimeters", "centimetre", "centimetres"]),
            ("mm", ["mm", "millimeter", "millimeters", "millimetre", "millimetres"]), ("inch", ["inch", "inches", "\""]),
            ("ft", ["ft", "foot", "feet"]), ("yd", ["yd", "yard", "yards"]), ("nmi", ["nautical"]),
            ("kg", ["kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"]), ("g", ["g", "gram", "grams", "gramme", "grammes"]),
            ("mg", ["mg", "milligram", "milligrams"]), ("lb", ["lb", "lbs", "pound", "pounds"]), ("oz", ["oz", "ounce", "ounces"]),
            ("st", ["stone", "stones"]), ("t", ["tonne", "tonnes", "ton", "tons"]),
            ("l", ["l", "liter", "liters", "litre", "litres"]), ("ml", ["ml", "milliliter", "milliliters", "millilitre", "millilitres"]),
            ("gal", ["gal", "gallon", "gallons"]), ("qt", ["qt", "quart", "quarts"]), ("pt", ["pint", "pints"]),
            ("cup", ["cup", "cups"]), ("tbsp", ["tbsp", "tablespoon", "tablespoons"]), ("tsp", ["tsp", "teaspoon", "teaspoons"]),
            ("floz", ["floz"]),
            ("c", ["°c", "c", "celsius", "centigrade", "℃"]), ("f", ["°f", "f", "fahrenheit", "℉"]), ("k", ["kelvin", "kelvins"]),
            ("bit", ["bit", "bits"]), ("byte", ["b", "byte", "bytes"]), ("kb", ["kb", "kilobyte", "kilobytes"]), ("kib", ["kib", "kibibyte", "kibibytes"]),
            ("mb", ["mb", "megabyte", "megabytes"]), ("mib", ["mib", "mebibyte", "mebibytes"]), ("gb", ["gb", "gigabyte", "gigabytes"]),
            ("gib", ["gib", "gibibyte", "gibibytes"]), ("tb", ["tb", "terabyte", "terabytes"]), ("tib", ["tib", "tebibyte", "tebibytes"]),
            ("kbps", ["kbps"]), ("mbps", ["mbps", "mbit/s"]), ("gbps", ["gbps"]),
            ("ms", ["ms", "millisecond", "milliseconds", "msec"]), ("us", ["µs", "microsecond", "microseconds"]), ("ns", ["ns", "nanosecond", "nanoseconds"]),
            ("s", ["s", "sec", "secs", "second", "seconds"]), ("min", ["min", "mins", "minute", "minutes"]),
            ("h", ["h", "hr", "hrs", "hour", "hours"]), ("day", ["day", "days"]), ("week", ["week", "weeks"]), ("month", ["month", "months"]),
            ("year", ["year", "years", "yr", "yrs"]), ("decade", ["decade", "decades"]), ("century", ["century", "centuries"]),
            ("%", ["%", "percent", "per cent", "pct"]), ("usd", ["$", "usd", "dollar", "dollars", "bucks"]), ("eur", ["€", "eur", "euro", "euros"]),
            ("gbp", ["£", "gbp", "quid"]), ("jpy", ["¥", "yen", "jpy"]), ("inr", ["₹", "rupee", "rupees", "inr"]),
            ("mph", ["mph"]), ("kmh", ["kph", "km/h", "kmh"]), ("knot", ["knot", "knots"]),
            ("v", ["v", "volt", "volts"]), ("a", ["amp", "amps", "ampere", "amperes"]), ("w", ["w", "watt", "watts"]), ("kw", ["kw", "kilowatt", "kilowatts"]),
            ("kwh", ["kwh"]), ("hz", ["hz", "hertz"]), ("khz", ["khz"]), ("mhz", ["mhz"]), ("ghz", ["ghz"]),
            ("cal", ["cal", "calorie", "calories"]), ("kcal", ["kcal", "kilocalorie", "kilocalories"]), ("j", ["joule", "joules"]),
            ("px", ["px", "pixel", "pixels"]), ("pt", ["pt"]), ("em", ["em", "rem"]), ("dpi", ["dpi"]),
            ("psi", ["psi"]), ("bar", ["bar"]), ("pa", ["pa", "pascal", "pascals"]), ("acre", ["acre", "acres"]), ("ha", ["ha", "hectare", "hectares"]),
            ("sqft", ["sqft"]), ("deg", ["°", "degree", "degrees"]), ("rad", ["rad", "radian", "radians"]),
            ("core", ["core", "cores"]), ("thread", ["thread", "threads"]), ("rpm", ["rpm"]), ("fps", ["fps"]),
        ]
        for (name, spellings) in groups { for spelling in spellings { units[spelling] = name } }
        return units
    }()

    /// Units that tell two questions apart even without a number ("in miles" vs "in kilometres").
    static let measureUnits: Set<String> = [
        "km", "mi", "cm", "mm", "inch", "ft", "yd", "nmi", "kg", "mg", "lb", "oz", "st", "l", "ml", "gal", "qt", "tbsp", "tsp",
        "c", "f", "k", "kb", "kib", "mb", "mib", "gb", "gib", "tb", "tib", "kbps", "mbps", "gbps", "usd", "eur", "gbp", "jpy", "inr",
        "mph", "kmh", "knot", "kwh", "cal", "kcal", "px", "em", "psi", "acre", "ha", "sqft", "rad",
    ]

    /// Bare unit words that are everyday English too, so only count next to a number.
    static let unitsOnlyAfterNumbers: Set<String> = [
        "m", "g", "s", "h", "b", "c", "f", "v", "a", "w", "l", "t", "pt", "em", "bar", "pa", "ha", "st", "k", "rad", "foot", "feet", "yard",
        "yards", "stone", "stones",
    ]

    static let months: [String: Int] = [
        "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5, "june": 6, "jun": 6,
        "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
        "december": 12, "dec": 12,
    ]

    /// Month names that are ordinary words too: months only when capitalised.
    static let ambiguousMonths: Set<String> = ["may", "march", "mar", "jan", "dec", "sep", "oct", "jun", "jul", "aug", "apr", "nov", "feb", "sept"]

    static let dayWords: Set<String> = [
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mondays", "tuesdays", "wednesdays", "thursdays",
        "fridays", "saturdays", "sundays", "weekday", "weekdays", "weekend", "weekends",
        "today", "tomorrow", "yesterday", "tonight", "morning", "afternoon", "evening", "night", "overnight", "noon", "midnight", "midday",
        "dawn", "dusk", "sunrise", "sunset", "spring", "summer", "autumn", "winter",
        "daily", "weekly", "monthly", "yearly", "annually", "hourly", "quarterly", "biweekly", "fortnightly",
        "christmas", "easter", "thanksgiving", "halloween", "ramadan", "hanukkah", "diwali",
    ]

    /// How often: "daily", or "every day", "a day", "per day".
    static let frequencies: [String: String] = [
        "daily": "daily", "weekly": "weekly", "monthly": "monthly", "yearly": "yearly", "annually": "yearly", "annual": "yearly",
        "hourly": "hourly", "nightly": "daily", "quarterly": "quarterly", "biweekly": "biweekly", "fortnightly": "biweekly",
    ]
    static let frequencyOf: [String: String] = [
        "day": "daily", "week": "weekly", "month": "monthly", "year": "yearly", "hour": "hourly", "minute": "minutely", "second": "secondly",
        "night": "daily", "quarter": "quarterly", "fortnight": "biweekly",
    ]
    /// What makes a period a frequency ("a week", "per month", "every day").
    static let frequencyWords: Set<String> = ["a", "an", "per", "every", "each"]
    /// Words that place a period relative to now ("next week", "last year").
    static let relativePeriod: Set<String> = ["next", "last", "this", "previous", "past", "coming", "upcoming", "following"]
    static let periods: Set<String> = ["week", "month", "year", "weekend", "decade", "century", "quarter", "semester", "season", "night", "morning", "evening", "afternoon"]

    /// Words that negate or exclude what follows.
    static let negations: Set<String> = [
        "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without", "cannot", "cant", "can't", "won't",
        "wont", "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt",
        "weren't", "werent", "shouldn't", "shouldnt", "couldn't", "couldnt", "wouldn't", "wouldnt", "mustn't", "mustnt", "hasn't",
        "hasnt", "haven't", "havent", "hadn't", "hadnt", "ain't", "needn't", "shan't", "except", "excluding", "exclude", "excludes",
        "lacking", "lack", "lacks", "absent", "non", "avoid", "avoiding",
    ]

    /// Prefixes that can flip a word's meaning (unsafe, disallow, impossible, non-blocking, …).
    static let negatingPrefixes = ["non-", "non", "un", "dis", "in", "im", "il", "ir", "anti", "de", "mis", "a"]

    /// Opposites: each word's family and pole. Two questions whose words of one family point to
    /// different poles ask opposite things.
    static let poles: [String: [(family: String, pole: Int)]] = {
        var poles: [String: [(family: String, pole: Int)]] = [:]
        let families: [(String, [String], [String])] = [
            ("age", ["older", "oldest", "old", "elder", "eldest", "earlier", "earliest", "previous", "former", "ancient"],
             ["newer", "newest", "new", "younger", "youngest", "young", "later", "latest", "recent", "modern", "next", "upcoming"]),
            ("time", ["before", "prior", "pre", "until", "till", "ahead"], ["after", "post", "since", "following", "afterwards"]),
            ("vertical", ["above", "over", "up", "upward", "upwards", "upper", "top", "higher", "highest", "high", "raise", "rise", "ascend", "upstairs"],
             ["below", "under", "down", "downward", "downwards", "lower", "bottom", "lowest", "low", "drop", "fall", "descend", "beneath", "downstairs"]),
            ("amount", ["increase", "increases", "increasing", "increased", "more", "most", "grow", "grows", "growing", "gain", "gaining",
                        "add", "adding", "plus", "extra", "boost", "maximize", "maximise", "expand", "enlarge", "raise", "raising", "inflate"],
             ["decrease", "decreases", "decreasing", "decreased", "less", "least", "fewer", "fewest", "shrink", "shrinks", "shrinking", "lose",
              "losing", "minus", "reduce", "reducing", "cut", "minimize", "minimise", "contract", "lower", "lowering", "deflate", "subtract"]),
            ("extreme", ["max", "maximum", "largest", "biggest", "greatest", "highest", "longest", "heaviest", "tallest", "widest", "deepest"],
             ["min", "minimum", "smallest", "least", "lowest", "shortest", "lightest", "narrowest", "shallowest", "tiniest"]),
            ("size", ["larger", "bigger", "greater", "large", "big", "huge", "taller", "wider", "longer", "heavier", "thicker", "deeper"],
             ["smaller", "lesser", "small", "little", "tiny", "shorter", "narrower", "lighter", "thinner", "shallower"]),
            ("distance", ["closer", "closest", "nearer", "nearest", "near", "close", "nearby"], ["farther", "farthest", "further", "furthest", "far", "distant"]),
            ("speed", ["faster", "fastest", "quicker", "quickest", "fast", "quick", "speed", "accelerate", "rapid"],
             ["slower", "slowest", "slow", "slowly", "decelerate", "sluggish"]),
            ("quality", ["best", "better", "good", "pros", "advantages", "advantage", "benefits", "benefit", "strengths", "positive"],
             ["worst", "worse", "bad", "cons", "disadvantages", "disadvantage", "drawbacks", "drawback", "downsides", "weaknesses", "negative", "risks"]),
            ("order", ["first", "start", "beginning", "begin", "initial", "leading", "head", "front", "ascending", "asc", "prepend"],
             ["last", "end", "ending", "final", "trailing", "tail", "back", "descending", "desc", "append"]),
            ("side", ["left", "west", "western", "westward"], ["right", "east", "eastern", "eastward"]),
            ("pole", ["north", "northern", "northward", "northbound"], ["south", "southern", "southward", "southbound"]),
            ("flow", ["import", "imports", "importing", "input", "inbound", "incoming", "ingress", "receive", "receiving", "download", "downloading", "pull", "fetch", "read", "reading", "load", "loading", "inhale"],
             ["export", "exports", "exporting", "output", "outbound", "outgoing", "egress", "send", "sending", "upload", "uploading", "push", "write", "writing", "save", "saving", "dump", "exhale"]),
            ("coding", ["encode", "encoding", "encrypt", "encryption", "compress", "compression", "serialize", "serialise", "serialization", "zip", "pack", "marshal", "escape", "hash"],
             ["decode", "decoding", "decrypt", "decryption", "decompress", "decompression", "deserialize", "deserialise", "deserialization", "unzip", "unpack", "unmarshal", "unescape"]),
            ("trade", ["buy", "buying", "purchase", "bought", "borrow", "borrowing", "import"], ["sell", "selling", "sold", "lend", "lending", "export"]),
            ("switch", ["enable", "enabled", "enabling", "on", "activate", "allow", "allowed", "allowing", "permit", "show", "unmute", "unlock", "open", "start", "install", "mount", "connect", "attach", "include", "turn-on", "login", "log-in", "subscribe"],
             ["disable", "disabled", "disabling", "off", "deactivate", "deny", "block", "blocked", "blocking", "forbid", "hide", "mute", "lock", "close", "stop", "uninstall", "unmount", "disconnect", "detach", "exclude", "turn-off", "logout", "log-out", "unsubscribe"]),
            ("change", ["create", "creating", "add", "insert", "make", "build", "set"], ["delete", "deleting", "remove", "removing", "drop", "destroy", "unset", "erase", "clear"]),
            ("temperature", ["hot", "hotter", "hottest", "warm", "warmer", "warmest", "heat", "heating"], ["cold", "colder", "coldest", "cool", "cooler", "coolest", "freeze", "chill", "cooling"]),
            ("price", ["expensive", "pricier", "priciest", "costly", "premium"], ["cheap", "cheaper", "cheapest", "affordable", "budget", "inexpensive"]),
            ("case", ["uppercase", "upper-case", "capitalize", "capitalise", "capital", "capitals"], ["lowercase", "lower-case", "decapitalize", "small"]),
            ("inside", ["inside", "inner", "internal", "indoor", "indoors", "interior", "within"], ["outside", "outer", "external", "outdoor", "outdoors", "exterior"]),
            ("win", ["win", "wins", "winning", "won", "victory", "success", "pass", "passed", "gain"], ["lose", "loses", "losing", "lost", "defeat", "failure", "fail", "failed", "loss"]),
            ("weight", ["gain", "bulk", "fatten"], ["lose", "slim", "diet"]),
            ("sign", ["positive", "plus"], ["negative", "minus"]),
            ("true", ["true", "yes", "correct", "right", "valid", "legal", "safe"], ["false", "wrong", "incorrect", "invalid", "illegal", "unsafe", "dangerous"]),
            ("sort", ["sort", "sorted", "sorting", "order", "ordered"], ["shuffle", "shuffled", "shuffling", "randomize", "randomise"]),
            ("merge", ["merge", "merging", "join", "joining", "combine", "concatenate", "concat", "unite"], ["split", "splitting", "separate", "divide", "partition"]),
            ("sleep", ["wake", "awake", "waking"], ["sleep", "asleep", "sleeping"]),
            ("life", ["alive", "live", "living", "birth", "born"], ["dead", "die", "dying", "death", "died"]),
            ("friend", ["friend", "friends", "ally", "allies"], ["enemy", "enemies", "foe", "foes"]),
            ("import-export", ["importer", "importers"], ["exporter", "exporters"]),
            ("host", ["client", "clients", "frontend", "front-end"], ["server", "servers", "backend", "back-end"]),
            ("parent", ["parent", "parents", "ancestor", "ancestors", "superclass", "base"], ["child", "children", "descendant", "descendants", "subclass", "derived"]),
            ("major", ["major", "majority"], ["minor", "minority"]),
            ("wet", ["wet", "humid", "damp", "moist"], ["dry", "arid"]),
            ("light", ["light", "bright", "brighter", "lighter"], ["dark", "darker", "dim", "dimmer"]),
            ("sweet", ["sweet", "sweeter"], ["sour", "bitter", "salty", "savory", "savoury"]),
            ("soft", ["soft", "softer", "runny"], ["hard", "harder", "firm", "firmer"]),
            ("strong", ["strong", "stronger", "strongest"], ["weak", "weaker", "weakest"]),
            ("early", ["early", "earlier", "earliest", "sooner"], ["late", "later", "latest", "delayed"]),
            ("rich", ["rich", "richer", "wealthy"], ["poor", "poorer"]),
            ("male", ["male", "men", "man", "boy", "boys", "husband", "father", "son", "he", "him", "his"], ["female", "women", "woman", "girl", "girls", "wife", "mother", "daughter", "she", "her", "hers"]),
            ("singular", ["singular"], ["plural"]),
            ("debit", ["debit", "credit-card"], ["credit", "debit-card"]),
            ("odd", ["odd"], ["even"]),
            ("prime", ["prime"], ["composite"]),
            ("static", ["static"], ["dynamic"]),
            ("sync", ["synchronous", "sync", "blocking"], ["asynchronous", "async", "non-blocking", "nonblocking"]),
            ("public", ["public"], ["private", "protected"]),
            ("absolute", ["absolute"], ["relative"]),
            ("local", ["local", "locally"], ["remote", "remotely", "global", "globally"]),
            ("horizontal", ["horizontal", "horizontally", "row", "rows"], ["vertical", "vertically", "column", "columns"]),
            ("row-major", ["width"], ["height"]),
            ("in-out", ["entering", "enter", "entry"], ["exit", "exiting", "leaving"]),
            ("push-pop", ["push", "enqueue"], ["pop", "dequeue"]),
            ("undo", ["undo"], ["redo"]),
            ("forward", ["forward", "forwards", "next"], ["backward", "backwards", "reverse", "previous"]),
            ("mean", ["mean", "average"], ["median", "mode"]),
            ("offense", ["offense", "offence", "attack", "attacking"], ["defense", "defence", "defend", "defending"]),
            ("supply", ["supply"], ["demand"]),
            ("inflation", ["inflation"], ["deflation"]),
            ("acid", ["acid", "acidic"], ["base", "alkaline", "basic"]),
            ("arrive", ["arrive", "arrival", "arrivals", "land", "landing"], ["depart", "departure", "departures", "leave", "takeoff"]),
            ("stock", ["bull", "bullish", "long"], ["bear", "bearish", "short"]),
        ]
        for (family, first, second) in families {
            for word in first { poles[word, default: []].append((family, 0)) }
            for word in second { poles[word, default: []].append((family, 1)) }
        }
        return poles
    }()

    /// Words that put one thing before another in a question that has a direction ("km to miles").
    static let connectors: Set<String> = ["to", "into", "from", "than", "vs", "versus", "over", "->", "→", "=>", "instead", "onto", "towards", "toward", "rather"]
    /// Connectors that compare: the two sides trade places only if the question asks the opposite.
    static let comparisons: Set<String> = ["than", "vs", "versus", "over", "instead", "rather"]

    /// Function words, question words and verbs too common to anchor an order or be a name.
    static let common: Set<String> = [
        "a", "an", "the", "and", "or", "but", "if", "then", "so", "of", "in", "on", "at", "by", "for", "with", "about", "as", "is", "are",
        "was", "were", "be", "been", "being", "am", "do", "does", "did", "done", "have", "has", "had", "having", "i", "me", "my", "mine",
        "you", "your", "yours", "we", "our", "us", "they", "them", "their", "it", "its", "this", "that", "these", "those", "there", "here",
        "what", "whats", "what's", "which", "who", "whom", "whose", "why", "how", "hows", "how's", "when", "where", "whats", "can", "could",
        "should", "would", "will", "shall", "may", "might", "must", "please", "tell", "explain", "give", "show", "help", "need",
        "want", "get", "got", "make", "use", "using", "used", "way", "ways", "best", "good", "some", "any", "all", "each", "every", "one",
        "ones", "just", "also", "too", "very", "really", "quite", "much", "many", "like", "to", "from", "into", "than", "it's", "i'm",
        "i've", "i'd", "i'll", "im", "ive", "hey", "hi", "hello", "thanks", "thank", "ok", "okay", "yes", "could", "difference",
        "between", "know", "describe", "list", "find", "there's", "is", "does", "doing", "which", "whether", "other", "another", "same",
        "such", "only", "own", "out", "up", "down", "over", "again", "further", "once", "here", "both", "few", "most", "more", "nor", "not",
        "now", "well", "still", "ever", "anyone", "someone", "something", "anything", "everything", "thing", "things", "guide",
        "step", "steps", "easiest", "simplest", "quick", "quickly", "typical", "typically", "usually", "generally", "exactly", "actually",
        "main", "example", "examples", "lot", "lots", "bit", "mean", "means", "meaning",
        "define", "definition", "recommend", "suggest",
        "versus", "vs", "ask", "question", "answer", "okay", "pls", "plz", "u", "ur", "r", "y",
    ]

    /// Well-known names that are often written in lowercase: countries, big cities, languages,
    /// programming languages and tools, companies. Compared whatever their case.
    static let names: Set<String> = [
        // Countries and regions
        "afghanistan", "albania", "algeria", "andorra", "angola", "argentina", "armenia", "australia", "austria", "azerbaijan",
        "bahamas", "bahrain", "bangladesh", "barbados", "belarus", "belgium", "belize", "benin", "bhutan", "bolivia", "bosnia",
        "botswana", "brazil", "brunei", "bulgaria", "burundi", "cambodia", "cameroon", "canada", "chad", "chile", "china", "colombia",
        "congo", "croatia", "cuba", "cyprus", "czechia", "czech", "denmark", "djibouti", "dominica", "ecuador", "egypt", "eritrea",
        "estonia", "eswatini", "ethiopia", "fiji", "finland", "france", "gabon", "gambia", "georgia", "germany", "ghana", "greece",
        "grenada", "guatemala", "guinea", "guyana", "haiti", "honduras", "hungary", "iceland", "india", "indonesia", "iran", "iraq",
        "ireland", "israel", "italy", "jamaica", "japan", "jordan", "kazakhstan", "kenya", "kiribati", "korea", "kosovo", "kuwait",
        "kyrgyzstan", "laos", "latvia", "lebanon", "lesotho", "liberia", "libya", "liechtenstein", "lithuania", "luxembourg",
        "madagascar", "malawi", "malaysia", "maldives", "mali", "malta", "mauritania", "mauritius", "mexico", "micronesia", "moldova",
        "monaco", "mongolia", "montenegro", "morocco", "mozambique", "myanmar", "namibia", "nauru", "nepal", "netherlands", "holland",
        "nicaragua", "niger", "nigeria", "norway", "oman", "pakistan", "palau", "palestine", "panama", "paraguay", "peru", "philippines",
        "poland", "portugal", "qatar", "romania", "russia", "rwanda", "samoa", "senegal", "serbia", "seychelles", "singapore",
        "slovakia", "slovenia", "somalia", "spain", "sudan", "suriname", "sweden", "switzerland", "syria", "taiwan", "tajikistan",
        "tanzania", "thailand", "togo", "tonga", "tunisia", "turkey", "türkiye", "turkmenistan", "tuvalu", "uganda", "ukraine",
        "uruguay", "uzbekistan", "vanuatu", "vatican", "venezuela", "vietnam", "yemen", "zambia", "zimbabwe", "usa", "uk", "uae",
        "england", "scotland", "wales", "britain", "america", "europe", "asia", "africa", "antarctica", "oceania", "scandinavia",
        "siberia", "alaska", "hawaii", "california", "texas", "florida", "ontario", "quebec", "bavaria", "catalonia", "tasmania",
        // Cities
        "london", "paris", "berlin", "madrid", "rome", "vienna", "prague", "budapest", "warsaw", "lisbon", "dublin", "amsterdam",
        "brussels", "zurich", "geneva", "stockholm", "oslo", "copenhagen", "helsinki", "athens", "istanbul", "moscow", "kyiv", "kiev",
        "tokyo", "osaka", "kyoto", "seoul", "beijing", "shanghai", "shenzhen", "delhi", "mumbai", "bangalore", "bengaluru", "chennai",
        "kolkata", "dubai", "cairo", "lagos", "nairobi", "johannesburg", "sydney", "melbourne", "brisbane", "perth", "auckland",
        "toronto", "vancouver", "montreal", "chicago", "boston", "seattle", "denver", "austin", "houston", "dallas", "miami", "atlanta",
        "philadelphia", "washington", "nyc", "manhattan", "brooklyn", "la", "sf", "oakland", "portland", "phoenix", "vegas",
        "barcelona", "milan", "munich", "hamburg", "frankfurt", "cologne", "lyon", "marseille", "nice", "venice", "florence", "naples",
        "edinburgh", "glasgow", "manchester", "liverpool", "oxford", "cambridge", "bristol", "hong", "kong", "bangkok", "hanoi",
        "jakarta", "manila", "lima", "bogota", "santiago", "havana", "rio", "paulo", "buenos", "aires", "mexico",
        // Human languages
        "english", "french", "spanish", "german", "italian", "portuguese", "dutch", "swedish", "norwegian", "danish", "finnish",
        "polish", "czech", "russian", "ukrainian", "greek", "turkish", "arabic", "hebrew", "hindi", "urdu", "bengali", "chinese",
        "mandarin", "cantonese", "japanese", "korean", "vietnamese", "thai", "indonesian", "malay", "swahili", "latin", "persian",
        "farsi", "hungarian", "romanian", "catalan", "welsh", "irish", "icelandic",
        // Programming languages, runtimes, tools
        "python", "java", "javascript", "typescript", "kotlin", "scala", "swift", "objective-c", "rust", "go", "golang", "ruby", "perl",
        "php", "haskell", "erlang", "elixir", "clojure", "lua", "julia", "matlab", "fortran", "cobol", "pascal", "dart", "groovy",
        "bash", "zsh", "fish", "powershell", "sql", "mysql", "postgres", "postgresql", "sqlite", "mongodb", "redis", "cassandra",
        "elasticsearch", "kafka", "rabbitmq", "nginx", "apache", "haproxy", "docker", "kubernetes", "k8s", "helm", "terraform",
        "ansible", "git", "svn", "mercurial", "github", "gitlab", "bitbucket", "linux", "ubuntu", "debian", "fedora", "centos",
        "arch", "windows", "macos", "osx", "ios", "android", "react", "vue", "angular", "svelte", "django", "flask", "fastapi",
        "rails", "laravel", "spring", "express", "node", "nodejs", "deno", "bun", "numpy", "pandas", "pytorch", "tensorflow",
        "keras", "scikit-learn", "sklearn", "jquery", "bootstrap", "tailwind", "webpack", "vite", "npm", "yarn", "pnpm", "pip",
        "conda", "cargo", "maven", "gradle", "vim", "neovim", "emacs", "vscode", "excel", "word", "powerpoint", "photoshop",
        "c", "c++", "cpp", "c#", "csharp", "f#", ".net", "dotnet", "r", "html", "css", "json", "yaml", "xml", "csv", "toml",
        "graphql", "grpc", "rest", "http", "https", "tcp", "udp", "ssh", "ftp", "dns", "ipv4", "ipv6", "aws", "gcp", "azure",
        // Companies and products
        "google", "apple", "microsoft", "amazon", "meta", "facebook", "instagram", "whatsapp", "twitter", "netflix", "spotify",
        "tesla", "toyota", "honda", "ford", "bmw", "mercedes", "audi", "volkswagen", "nike", "adidas", "samsung", "sony", "nintendo",
        "intel", "amd", "nvidia", "ibm", "oracle", "openai", "anthropic", "chatgpt", "claude", "gemini", "iphone", "ipad", "mac",
        "macbook", "pixel", "galaxy", "playstation", "xbox", "switch", "youtube", "tiktok", "reddit", "linkedin", "slack", "zoom",
        "uber", "airbnb", "paypal", "visa", "mastercard", "bitcoin", "ethereum", "coca-cola", "pepsi", "starbucks", "mcdonalds",
        "ikea", "walmart", "costco", "target",
    ]

    /// Short names that also mean other things: a name only when written with a capital.
    static let namesOnlyCapitalized: Set<String> = [
        "go", "rust", "swift", "java", "ruby", "dart", "julia", "express", "spring", "node", "bun", "arch", "fish", "word", "switch",
        "target", "visa", "meta", "pixel", "galaxy", "nice", "georgia", "jordan", "chad", "turkey", "niger", "guinea", "mali",
        "c", "r", "la", "sf", "rest", "claude", "gemini", "apple", "amazon", "oracle", "rails", "react", "angular", "vue", "excel",
        "windows", "austin", "phoenix", "washington", "cambridge", "oxford", "perth", "lima", "santiago", "rio", "paulo",
    ]

    /// Spellings of one name.
    static let aliases: [String: String] = [
        "js": "javascript", "ts": "typescript", "py": "python", "golang": "go", "k8s": "kubernetes", "postgresql": "postgres",
        "nodejs": "node", "node.js": "node", "osx": "macos", "csharp": "c#", "cpp": "c++", "sklearn": "scikit-learn", "usa": "us",
        "america": "us", "u.s.": "us", "u.s.a.": "us", "united": "united", "uk": "britain", "u.k.": "britain", "england": "england",
        "holland": "netherlands", "türkiye": "turkey", "czechia": "czech", "farsi": "persian", "kiev": "kyiv", "bengaluru": "bangalore",
        "nyc": "new york", "mcdonald's": "mcdonalds", "dotnet": ".net", "vscode": "vs code", "facebook": "meta", "american": "us",
        "mac": "macos", "british": "britain",
    ]

    /// Common words of the other languages questions come in that English does not use, to tell a
    /// question in one of them from an English one.
    static let languages: [(name: String, words: Set<String>)] = [
        ("fr", ["le", "la", "les", "est", "sont", "quel", "quelle", "quels", "quelles", "pourquoi", "qui", "où", "quand", "des", "du",
                "et", "pour", "avec", "mon", "mes", "je", "vous", "tu", "il", "elle", "ce", "cette", "une", "au", "aux", "faire", "peut",
                "puis", "dans", "sur", "pas", "ne", "combien", "qu'est-ce", "c'est", "est-ce", "entre", "moi", "mais", "avez", "avoir",
                "être", "très", "leur", "ils", "nous", "votre", "notre", "en", "explique", "expliquez", "explique-moi", "de"]),
        ("es", ["el", "los", "las", "es", "qué", "cómo", "por", "porqué", "quién", "dónde", "cuándo", "del", "y", "para", "mis", "yo",
                "tú", "usted", "una", "unos", "puedo", "hacer", "cuál", "cuántos", "cuánto", "se", "está", "sobre", "pero", "muy", "entre",
                "más", "mejor", "puede", "tengo", "cuales", "como", "que", "explica", "explícame", "de"]),
        ("de", ["der", "das", "ist", "sind", "wie", "warum", "welche", "welcher", "welches", "wer", "wo", "wann", "und", "für",
                "mein", "meine", "ich", "du", "sie", "es", "ein", "eine", "einen", "kann", "zu", "von", "auf", "dem", "nicht", "viel",
                "viele", "bei", "im", "ob", "oder", "aber", "sehr", "mir", "mich", "dich", "erkläre", "erklär", "wieviel", "wozu"]),
        ("it", ["il", "gli", "è", "sono", "cosa", "perché", "quale", "quali", "chi", "quando", "di", "della", "dei", "mio", "un", "una",
                "posso", "fare", "quanto", "quanti", "nel", "nella", "si", "che", "sui", "sul", "sulla", "degli", "delle", "molto",
                "spiega", "spiegami", "raccontami", "dimmi"]),
        ("pt", ["é", "são", "que", "como", "por", "porque", "qual", "quais", "quem", "onde", "quando", "da", "das", "para", "meu", "minha",
                "eu", "você", "uma", "posso", "fazer", "quanto", "quantos", "na", "não", "se", "muito", "mas", "sem", "entre", "explique",
                "explica", "diga", "de"]),
        ("nl", ["de", "het", "een", "zijn", "wat", "waarom", "welke", "wie", "waar", "wanneer", "voor", "met", "mijn", "ik", "je", "jij",
                "kan", "kun", "niet", "te", "om", "naar", "dit", "dat", "ook", "maar", "uit"]),
    ]

    /// Letters English does not write, which point to another language.
    static let foreignLetters: Set<Character> = [
        "é", "è", "ê", "ë", "à", "â", "ç", "î", "ï", "ô", "ù", "û", "ü", "ÿ", "œ", "æ", "ñ", "á", "í", "ó", "ú", "ä", "ö", "ß", "ã", "õ",
        "ì", "ò", "¿", "¡", "å", "ø", "ą", "ć", "ę", "ł", "ń", "ś", "ź", "ż", "č", "ř", "š", "ž", "ů", "ý", "ő", "ű", "ğ", "ş", "ı",
    ]

    /// English function words, the evidence a question is in English.
    static let english: Set<String> = [
        "the", "is", "are", "what", "what's", "how", "why", "which", "who", "where", "when", "do", "does", "did", "can", "could", "of", "to",
        "and", "in", "for", "with", "my", "i", "you", "your", "it", "this", "that", "should", "would", "a", "an", "on", "at", "from", "by",
        "about", "me", "there", "was", "were", "will", "be", "have", "has", "not", "or", "if", "so", "get", "make", "need", "want", "way",
        "best", "between", "difference", "i'm", "it's", "don't", "doesn't", "explain", "tell", "give", "write", "much", "many", "some",
    ]

    /// Verbs that "in" and "out" complete, pointing opposite ways ("zoom in", "log out").
    static let phrasalVerbs: Set<String> = [
        "zoom", "log", "sign", "check", "opt", "fade", "scale", "cash", "clock", "tune", "breathe", "plug", "phase", "roll", "swipe", "zoomed",
        "logged", "signed", "checked", "opted", "scaled",
    ]
}
