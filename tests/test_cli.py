"""Tests of the `ffseg` command line as a whole (subcommands have their own files)."""

from ffseg.cli import main


def test_pseudo_fakes_writes_a_grid_and_never_overwrites(tmp_path):
    import cv2
    from skimage import data

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), data.astronaut()[:, :, ::-1])
    out = tmp_path / "grids"
    argv = ["pseudo-fakes", str(photo), "--output", str(out), "--rows", "2", "--cell", "64"]
    assert main(argv) == 0 and main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut-pseudo-fakes-2.png", "astronaut-pseudo-fakes.png"]
    assert main(["pseudo-fakes", str(tmp_path / "none.png"), "--output", str(out)]) == 1


def test_every_subcommand_is_registered(capsys):
    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    for command in ("detect", "sample", "pseudo-fakes", "serve", "export"):
        assert command in usage
