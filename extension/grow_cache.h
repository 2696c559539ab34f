/*
 * grow_cache.h — a backend's direct-mapped cache that grows with use.
 *
 * The caches a backend keeps across plannings (keys by description, answers,
 * texts pilotd has) were static tables of thousands of entries: a new backend
 * touching a few dozen entries spread over their pages paid a page fault
 * (~1 us) for nearly each one, on its first planning.  This table starts
 * small (kInitialEntries: a few pages) and grows fourfold, up to kMaxEntries,
 * once it has taken half as many new entries as it has slots.  Growing drops
 * what it held (a cache: at most a few recomputations, a few times per
 * backend).  An entry lives in one of kWays neighbouring slots of its hash,
 * so a few colliding hashes do not evict each other.  Without memory every
 * lookup misses.
 *
 * Entry must be plain data for which all-zero bytes mean "empty".
 */
#ifndef PG_PILOT_GROW_CACHE_H
#define PG_PILOT_GROW_CACHE_H

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

template <typename Entry, uint32_t kMaxEntries, uint32_t kInitialEntries = 256>
class GrowCache
{
public:
	static constexpr uint32_t kWays = 4;

	static_assert(std::is_trivially_copyable<Entry>::value, "plain data");
	static_assert((kMaxEntries & (kMaxEntries - 1)) == 0 && (kInitialEntries & (kInitialEntries - 1)) == 0 &&
				  kInitialEntries <= kMaxEntries && kInitialEntries >= kWays, "sizes are powers of two");

	/* The entry stored under hash h (nullptr: none). */
	Entry	   *find(uint64_t h) noexcept
	{
		const uint64_t tag = tag_of(h);

		if (table_ == nullptr)
			return nullptr;
		for (uint32_t i = 0; i < kWays; i++)
		{
			Slot	   &s = table_[(h + i) & (capacity_ - 1)];

			if (s.tag == tag)
				return &s.entry;
		}
		return nullptr;
	}

	/* A zeroed entry to store under hash h (nullptr: no memory): a free one
	 * of its kWays slots, else the oldest guess (round robin).  May grow the
	 * table first: entries found before are then invalid. */
	Entry	   *claim(uint64_t h) noexcept
	{
		const uint64_t tag = tag_of(h);
		Slot	   *victim = nullptr;

		if (table_ == nullptr || (claims_ >= capacity_ / 2 && capacity_ < kMaxEntries))
			grow();
		if (table_ == nullptr)
			return nullptr;
		claims_++;
		for (uint32_t i = 0; i < kWays && victim == nullptr; i++)
		{
			Slot	   &s = table_[(h + i) & (capacity_ - 1)];

			if (s.tag == tag || s.tag == 0)
				victim = &s;
		}
		if (victim == nullptr)
			victim = &table_[(h + claims_ % kWays) & (capacity_ - 1)];
		memset(static_cast<void *>(victim), 0, sizeof *victim);
		victim->tag = tag;
		return &victim->entry;
	}

	uint32_t	capacity() const noexcept { return table_ != nullptr ? capacity_ : 0; }

private:
	struct Slot
	{
		uint64_t	tag;		/* the hash it was stored under (never 0); 0: free */
		Entry		entry;
	};

	static uint64_t tag_of(uint64_t h) noexcept { return h != 0 ? h : 1; }

	void		grow() noexcept
	{
		const uint32_t n = table_ == nullptr ? kInitialEntries
			: (capacity_ * 4 < kMaxEntries ? capacity_ * 4 : kMaxEntries);
		Slot	   *t = static_cast<Slot *>(calloc(n, sizeof(Slot)));

		if (t == nullptr)
			return;				/* keep what there is */
		free(table_);
		table_ = t;
		capacity_ = n;
		claims_ = 0;
	}

	Slot	   *table_ = nullptr;
	uint32_t	capacity_ = 0;
	uint32_t	claims_ = 0;
};

#endif
