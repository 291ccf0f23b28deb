"""InfiniteTalk GUI: lip-synced talking-head video from a portrait and a voice clip."""

__version__ = "0.1.0"
APP_NAME = "infinitetalk-gui"
