import Testing
@testable import Engine

/// `SemanticGuard`: each thing it reads, a question pair it must refuse and one it must let through.
struct SemanticGuardTests {
    private func refusal(_ cached: String, _ asked: String) -> SemanticGuard.Refusal? {
        SemanticGuard.refusal(cached: cached, asked: asked)
    }

    @Test func numbersInDigitsOrWords() {
        #expect(self.refusal("How do I make pancakes with 3 eggs?", "How do I make pancakes with 4 eggs?") == .number)
        #expect(self.refusal("List the top 5 tallest buildings.", "List the top ten tallest buildings.") == .number)
        #expect(self.refusal("What is 15% of 80?", "What is 20% of 80?") == .number)
        #expect(self.refusal("Is 1,000 a prime number?", "Is 1,001 a prime number?") == .number)
        #expect(self.refusal("Who won the second world war?", "Who won the third world war?") == .number)
        // The same numbers, written otherwise.
        #expect(self.refusal("How do I make pancakes with 3 eggs?", "What's a pancake recipe that uses three eggs?") == nil)
        #expect(self.refusal("Plan a 2-day trip to Lisbon.", "Plan a two-day trip to Lisbon.") == nil)
        #expect(self.refusal("What is the half-life of carbon-14?", "How long is the half-life of carbon 14?") == nil)
        #expect(self.refusal("Which one is faster to learn?", "Which is faster to learn?") == nil, "\"one\" alone is no number")
    }

    @Test func units() {
        #expect(self.refusal("How long does it take to run 5 km?", "How long does it take to run 5 miles?") == .unit)
        #expect(self.refusal("Is 500 MB enough for the install?", "Is 500 GB enough for the install?") == .unit)
        #expect(self.refusal("What is the distance from Paris to Lyon in miles?", "What is the distance from Paris to Lyon in kilometers?") == .unit)
        #expect(self.refusal("How many calories are in 100g of rice?", "How many calories does 100 grams of rice have?") == nil)
    }

    @Test func datesAndTimes() {
        #expect(self.refusal("What happened in Europe in 1848?", "What happened in Europe in 1849?") == .date)
        #expect(self.refusal("Is the museum open on Monday?", "Is the museum open on Tuesday?") == .date)
        #expect(self.refusal("Set an alarm for 7am.", "Set an alarm for 7pm.") == .date)
        #expect(self.refusal("What was the weather like yesterday?", "What will the weather be like tomorrow?") == .date)
        #expect(self.refusal("Summarize last week's news.", "Summarize last month's news.") == .date)
        #expect(self.refusal("If I save $200 a week, how much will I have?", "If I save $200 a month, how much will I have?") == .date)
        #expect(self.refusal("Is the museum open on Monday?", "Does the museum open on Monday?") == nil)
        #expect(self.refusal("What should I pack for a week in Iceland?", "I'm going to Iceland for a week; what should I pack?") == nil)
    }

    @Test func negation() {
        #expect(self.refusal("Should I drive on the left in Japan?", "Should I not drive on the left in Japan?") == .negation)
        #expect(self.refusal("Which foods contain gluten?", "Which foods are without gluten?") == .negation)
        #expect(self.refusal("Why is my code safe to run?", "Why is my code unsafe to run?") == .negation)
        #expect(self.refusal("How do I keep the container running?", "How do I keep the container from running?") == .negation)
        #expect(self.refusal("Can I eat eggs every day?", "Can't I eat eggs every day?") == .negation)
        #expect(self.refusal("Why doesn't my code compile?", "Why does my code not compile?") == nil)
    }

    @Test func comparisonAndDirection() {
        #expect(self.refusal("Convert km to miles", "Convert miles to km") == .direction)
        #expect(self.refusal("What is 100 degrees Fahrenheit in Celsius?", "What is 100 degrees Celsius in Fahrenheit?") == .direction)
        #expect(self.refusal("Is Go faster than Python?", "Is Python faster than Go?") == .direction)
        #expect(self.refusal("Which is older, the pyramids or Stonehenge?", "Which is newer, the pyramids or Stonehenge?") == .direction)
        #expect(self.refusal("How do I increase the font size?", "How do I decrease the font size?") == .direction)
        #expect(self.refusal("How do I turn on dark mode?", "How do I turn off dark mode?") == .direction)
        #expect(self.refusal("What is the maximum heart rate for my age?", "What is the minimum heart rate for my age?") == .direction)
        #expect(self.refusal("How do I zoom in on a PDF?", "How do I zoom out on a PDF?") == .direction)
        #expect(self.refusal("How do I copy files from my laptop to the server?", "How do I copy files from the server to my laptop?") == .direction)
        #expect(self.refusal("How do I convert a string to an integer in Java?", "In Java, what's the way to turn a String into an int?") == nil)
    }

    @Test func namesAndLookAlikes() {
        #expect(self.refusal("What is the capital of Austria?", "What is the capital of Australia?") == .entity)
        #expect(self.refusal("How do I install java on linux?", "How do I install javascript on linux?") == .entity)
        #expect(self.refusal("Who founded Tesla?", "Who founded SpaceX?") == .entity)
        #expect(self.refusal("What are the side effects of ibuprofen?", "What are the side effects of naproxen?") == .entity)
        #expect(self.refusal("Is a whale a fish?", "Is a whale shark a fish?") == .entity)
        #expect(self.refusal("What is the capital of Canada?", "Which city is Canada's capital?") == nil)
        #expect(self.refusal("Who wrote the novel Pride and Prejudice?", "Pride and Prejudice was written by whom?") == nil)
        #expect(self.refusal("How do I convert a string to a number in JavaScript?", "What's the way to turn a string into a number in JS?") == nil)
    }

    @Test func quotedStrings() {
        #expect(self.refusal("What does the error 'ValueError: bad input' mean?", "What does the error 'TypeError: bad input' mean?") == .quote)
        #expect(self.refusal(#"Translate "good morning" to French."#, #"Translate "good night" to French."#) == .quote)
        #expect(self.refusal(#"What does "idempotent" mean in REST?"#, "In REST, what is meant by idempotent?") == nil)
        #expect(self.refusal("What's the difference between affect and effect?", #"How do "affect" and "effect" differ?"#) == nil)
    }

    @Test func code() {
        #expect(self.refusal("What does os.path.join do?", "What does os.path.split do?") == .code)
        #expect(self.refusal("When should I use git push --force?", "When should I use git push --force-with-lease?") == .code)
        #expect(self.refusal("What is in /etc/hosts?", "What is in /etc/hostname?") == .code)
        #expect(self.refusal("Explain getElementById.", "Explain getElementsByClassName.") == .code)
        #expect(self.refusal("How do I fetch https://example.com/a in Python?", "How do I fetch https://example.com/b in Python?") == .code)
        #expect(self.refusal("What does os.path.join do?", "Explain what os.path.join does.") == nil)
    }

    @Test func theLanguageOfTheQuestion() {
        #expect(self.refusal("How do I install Python on Windows?", "Comment installer Python sur Windows ?") == .language)
        #expect(self.refusal("Explain photosynthesis in simple terms.", "Explique la photosynthèse en termes simples.") == .language)
        #expect(self.refusal("What is the capital of France?", "¿Cuál es la capital de Francia?") == .language)
        #expect(self.refusal("What is the capital of France?", "Какая столица Франции?") == .language)
        #expect(self.refusal("What's the difference between a café and a bistro?", "How does a café differ from a bistro?") == nil)
    }

    @Test func rewordingsPass() {
        #expect(self.refusal("How do I reverse a list in Python?", "What's the way to reverse a Python list?") == nil)
        #expect(self.refusal("What causes the seasons on Earth?", "Why does Earth have seasons?") == nil)
        #expect(self.refusal("How do I undo the last git commit?", "How can I revert my most recent commit in git?") == nil)
        #expect(self.refusal("How do I get a refund?", "Can I have my money back") == nil)
        #expect(self.refusal("same words", "same words") == nil)
    }

    /// Whatever a client sends, the guard reads it in bounded time and never traps.
    @Test func hostileInputIsBoundedAndNeverTraps() {
        let digits = String(repeating: "9", count: 1_000)
        #expect(self.refusal(digits, digits + "1") != nil)
        #expect(self.refusal("What is 1/0 plus 1e999?", "What is 1/0 plus 1e998?") != nil)
        #expect(self.refusal("Is -0 equal to ---5?", "Is -0 equal to ---6?") != nil)
        let connectors = (String(repeating: "to ", count: 1_300), String(repeating: "to ", count: 1_299) + "from")
        #expect(self.refusal(connectors.0, connectors.1) == self.refusal(connectors.0, connectors.1), "the same verdict every time")
        #expect(self.refusal(String(repeating: "word ", count: 10_000), String(repeating: "word ", count: 9_999) + "other") == .length)
        let odd = ("\u{0}\u{FFFF}'\"`", String(repeating: "'\"`", count: 3))
        #expect(self.refusal(odd.0, odd.1) == self.refusal(odd.0, odd.1))
        #expect(self.refusal("", "?") == nil)
    }
}
