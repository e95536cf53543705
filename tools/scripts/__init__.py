"""What a probe script is made of: its files read, Emmett compiled, VP concatenated and loaded."""
