"""The ground floor: file-system helpers every other package stands on, and nothing above them.

    atomic.py   outputs that appear whole or not at all (files and folders), small files written atomically
    space.py    free space, preallocation, direct I/O, write-back; the one message for a full disk
    hashing.py  the hashers bertvault knows, and hashing a whole file once with several of them
    owners.py   host@pid tags on temporary things, and whether their process still runs
    lifetime.py worker processes that end with their parent and leave stop signals to it
    ranges.py   sets of byte ranges (what a partial file holds)

Nothing here raises bertvault's domain errors: these are OS-level facts (OSError, FileExistsError),
and the package that knows what the user was doing turns them into the right one-line error.
"""
