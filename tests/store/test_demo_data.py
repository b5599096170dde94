def test_demo_data_loads(pool):
    from fsd.demo_data import load
    from fsd.services import Services
    s = Services(pool=pool)
    d = load(s)
    assert d and len(d.passwords) == 12 and load(s) is None
