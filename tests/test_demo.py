from xdplab import demo


def test_demo_parses_the_sample_frame(capsys):
    demo.main()
    out = capsys.readouterr().out
    assert out.count("r0 = 8080 (UDP destination port)") == 2
    assert "fast path" in out and "reference interpreter" in out
