"""Puts a corpus's train, valid and test splits in one directory.

  par-fetch-data --dataset=wikitext-2 --dest=data/wikitext-2        # download
  par-fetch-data --dataset=enwik8 --dest=data/enwik8 --source=PATH  # local copy

Downloads the published archive from its original URL (or a mirror) and checks its MD5, or
takes a local copy (the archive, enwik8's or text8's unpacked file, or a directory of split
files); writes dest/{train,valid,test}.txt and dest/SOURCE.json, which records the archive's
MD5 and sha256 and each split's sha256. enwik8 and text8 are cut as Transformer-XL cuts them:
the last 5M bytes test, the 5M before valid, 90M train. An existing --dest is reused as it is.
"""

from absl import flags

from par import cli
from par.data import download

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_enum("dataset", "wikitext-2", list(download.CORPORA), "The corpus to fetch.")
  flags.DEFINE_string("dest", None, "Directory to create (default: data/<dataset>).")
  flags.DEFINE_string(
    "source",
    None,
    "A local copy instead of downloading: the published zip, enwik8's or text8's unpacked "
    "file, or a directory of split files.",
  )
  flags.DEFINE_multi_string(
    "url", None, "Download URLs, tried in order (default: the corpus's original and mirrors)."
  )
  flags.DEFINE_string(
    "md5", None, "Expected MD5 of the zip archive (default: the published one, where there is one)."
  )
  flags.DEFINE_float("timeout", 60, "Seconds without progress before giving up on a URL.")


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  corpus = download.CORPORA[FLAGS.dataset]
  try:
    print(
      download.prepare(
        corpus.name,
        FLAGS.dest or f"data/{corpus.name}",
        source=FLAGS.source,
        urls=FLAGS.url,
        md5=FLAGS.md5,
        timeout=FLAGS.timeout,
      )
    )
  except download.DownloadError as e:
    checksum = f" (MD5 {corpus.md5})" if corpus.md5 else ""
    default = corpus.name == "wikitext-2"  # create_tfrecords.sh's default; base_model.sh's data
    command = "./create_tfrecords.sh" + ("" if default else f" --dataset={corpus.name}")
    raise cli.ParError(
      f"{e}. Get {corpus.archive}{checksum} another way, then run {command} "
      f"--source=/path/to/{corpus.archive} (or --source=DIR holding train.txt, valid.txt and "
      "test.txt)" + (", then ./base_model.sh again" if default else "")
    ) from None


def run():
  """The command's entry point: `par-fetch-data`, `python -m par fetch_data`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()
