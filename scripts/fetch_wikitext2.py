"""Puts WikiText-2's train, valid and test splits in one directory.

  python scripts/fetch_wikitext2.py --dest=data/wikitext-2                # download
  python scripts/fetch_wikitext2.py --dest=data/wikitext-2 --source=PATH  # zip or directory

Downloads wikitext-2-v1.zip from its original URL or a mirror and checks its MD5, or takes a
local copy; writes dest/{train,valid,test}.txt. An existing --dest is reused as it is.
"""

from absl import flags

from par import cli
from par.data import download

_DEST = flags.DEFINE_string("dest", "data/wikitext-2", "Directory to create.")
_SOURCE = flags.DEFINE_string(
  "source", None, "Local wikitext-2-v1.zip, or a directory of split files, instead of downloading."
)
_URL = flags.DEFINE_multi_string(
  "url", list(download.WIKITEXT2_URLS), "Download URLs, tried in order."
)
_MD5 = flags.DEFINE_string("md5", download.WIKITEXT2_MD5, "Expected MD5 of the zip archive.")
_TIMEOUT = flags.DEFINE_float("timeout", 60, "Seconds without progress before giving up on a URL.")


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    print(
      download.prepare_wikitext2(
        _DEST.value, source=_SOURCE.value, urls=_URL.value, md5=_MD5.value, timeout=_TIMEOUT.value
      )
    )
  except download.DownloadError as e:
    raise cli.ParError(
      f"{e}. Get wikitext-2-v1.zip (MD5 {download.WIKITEXT2_MD5}) another way, then run "
      "./create_tfrecords.sh --source=/path/to/wikitext-2-v1.zip (or --source=DIR holding "
      "train.txt, valid.txt and test.txt), then ./base_model.sh again"
    ) from None


if __name__ == "__main__":
  cli.run(main)
