"""USD1 peg and liquidity: price and deviation per venue, depth per band and side, venue health.

Build: `usd1-indexer dashboards build` (or indexer.dashboards.build) -> dashboards/build/peg.json
"""

from indexer.dashboards import dashboard as make_dashboard
from indexer.dashboards import stat, state_timeline, target, timeseries, venue_variable

V = 'venue=~"$venue"'
# Alert thresholds: warning above 50 bps for 15 m, critical above 200 bps for 5 m.
DEVIATION = (("green", None), ("orange", 50.0), ("red", 200.0))
PRICE = (("red", None), ("orange", 0.98), ("green", 0.995), ("orange", 1.005), ("red", 1.02))
UP_DOWN = {"1": ("UP", "green"), "0": ("DOWN", "red")}

summary = [
    stat(
        "Worst deviation now",
        "Largest absolute distance from the peg over the selected venues, in basis points "
        "(max |usd1_peg_deviation_bps|). Orange above 50 bps, red above 200 bps.",
        [target(f"max(abs(usd1_peg_deviation_bps{{{V}}}))", "worst |deviation|")],
        unit="suffix: bps",
        thresholds=DEVIATION,
        decimals=1,
    ),
    stat(
        "Median price",
        "Median USD1 price in USD over the selected venues (usd1_price_usd).",
        [target(f"quantile(0.5, usd1_price_usd{{{V}}})", "median price")],
        unit="currencyUSD",
        thresholds=PRICE,
        decimals=4,
    ),
    stat(
        "Venues up",
        "Selected venues whose last read succeeded (usd1_venue_up), out of all selected venues.",
        [target(f"sum(usd1_venue_up{{{V}}}) / count(usd1_venue_up{{{V}}})", "up")],
        unit="percentunit",
        thresholds=(("red", None), ("orange", 0.5), ("green", 1.0)),
    ),
    stat(
        "Bid depth within widest band",
        "USD that can be sold into the selected venues before their price leaves the widest "
        "configured band below the peg (sum over venues of max over bands of usd1_depth_usd{side=bid}).",
        [target(f'sum(max by (venue) (usd1_depth_usd{{{V},side="bid"}}))', "bid depth")],
        unit="currencyUSD",
    ),
]

price = [
    timeseries(
        "Price per venue",
        "USD1 price in USD at each venue (usd1_price_usd), quoted through the venue's quote asset. "
        "Bands at 0.995/1.005 (50 bps) and 0.98/1.02 (200 bps).",
        [target(f"usd1_price_usd{{{V}}}", "{{venue}}")],
        unit="currencyUSD",
        thresholds=PRICE,
        show_thresholds=True,
        decimals=4,
    ),
    timeseries(
        "Peg deviation per venue",
        "Venue price minus peg in basis points of the peg (usd1_peg_deviation_bps); negative is below "
        "peg. Sustained above 50 bps: ticket; above 200 bps: page.",
        [target(f"usd1_peg_deviation_bps{{{V}}}", "{{venue}}")],
        unit="suffix: bps",
        thresholds=DEVIATION,
        show_thresholds=True,
        decimals=1,
    ),
]

depth = [
    timeseries(
        "Bid depth per band",
        "USD value of USD1 that can be sold into each venue before the price falls below "
        "peg x (1 - band) (usd1_depth_usd{side=bid}); 0 when the price is already outside the band.",
        [target(f'sum by (venue, band) (usd1_depth_usd{{{V},side="bid"}})', "{{venue}} {{band}}")],
        unit="currencyUSD",
        min_value=0,
    ),
    timeseries(
        "Ask depth per band",
        "USD value of USD1 that can be bought at each venue before the price rises above "
        "peg x (1 + band) (usd1_depth_usd{side=ask}).",
        [target(f'sum by (venue, band) (usd1_depth_usd{{{V},side="ask"}})', "{{venue}} {{band}}")],
        unit="currencyUSD",
        min_value=0,
    ),
]

venues = [
    state_timeline(
        "Venue up",
        "Whether each venue's last read succeeded (usd1_venue_up). While DOWN its price, deviation "
        "and depth are frozen at the last good read and excluded from the peg alerts.",
        [target(f"usd1_venue_up{{{V}}}", "{{venue}}")],
        mappings=UP_DOWN,
    ),
    timeseries(
        "Venue data age",
        "Seconds since each venue's last successful read (time() - "
        "usd1_venue_last_success_timestamp_seconds). Above 300 s for 5 m: alert USD1VenueStale.",
        [target(f"time() - usd1_venue_last_success_timestamp_seconds{{{V}}}", "{{venue}}")],
        unit="s",
        thresholds=(("green", None), ("red", 300.0)),
        show_thresholds=True,
        min_value=0,
    ),
]

dashboard = make_dashboard(
    title="USD1 / Peg and liquidity",
    uid="usd1-peg",
    description="USD1 price and peg deviation per venue, depth per band and side, venue freshness.",
    variables=[venue_variable()],
    sections=[
        ("Now", [summary]),
        ("Price and deviation", [price]),
        ("Depth", [depth]),
        ("Venue health", [venues]),
    ],
)
